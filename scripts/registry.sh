#!/usr/bin/env bash
# Loopback OCI registry (Debian's docker-registry, distribution 2.8).
#
#   scripts/registry.sh start DIR PORT [USER PASSWORD]   # htpasswd (bcrypt) auth when USER is given
#   scripts/registry.sh stop DIR
#
# Uses its own config (the shipped one listens on every interface).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: registry.sh start DIR PORT [USER PASSWORD] | stop DIR"
case "$cmd" in
start)
  port=${3:?port}; user=${4:-}; pass=${5:-}
  mkdir -p "$dir/data"
  auth=""
  if [ -n "$user" ]; then
    htpasswd -Bbc "$dir/htpasswd" "$user" "$pass" >/dev/null 2>&1
    auth="auth:
  htpasswd:
    realm: bundler-test
    path: $dir/htpasswd"
  fi
  cat > "$dir/config.yml" <<CFG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
CFG
  stop_pidfile "$dir/registry.pid"
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  if ! wait_for curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
    cat "$dir/registry.log" >&2; die "registry did not start on 127.0.0.1:$port"
  fi
  echo "registry: 127.0.0.1:$port (pid $(cat "$dir/registry.pid"))"
  ;;
stop) stop_pidfile "$dir/registry.pid" ;;
*) die "unknown command $cmd" ;;
esac
