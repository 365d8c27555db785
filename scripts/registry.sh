#!/usr/bin/env bash
# Loopback OCI registry (Debian's docker-registry, distribution 2.8).
#
#   scripts/registry.sh start DIR PORT [USER PASSWORD]   # htpasswd (bcrypt) auth when USER is given
#   REGISTRY_TLS=1 scripts/registry.sh start ...         # HTTPS with a fresh self-signed
#                                                        # certificate for 127.0.0.1 signed by DIR/ca.pem
#   REGISTRY_ACCESSLOG=1 scripts/registry.sh start ...   # every request in DIR/registry.log
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
  accesslog_off=true
  [ -n "${REGISTRY_ACCESSLOG:-}" ] && accesslog_off=false
  tls=""
  scheme=http
  if [ -n "${REGISTRY_TLS:-}" ]; then
    # A throwaway CA (DIR/ca.pem) and a leaf for 127.0.0.1 signed by it:
    # TLS verifiers refuse a CA certificate used as the server's own.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
      -keyout "$dir/key.pem" -out "$dir/leaf.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/leaf.ext"
    openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 2 -extfile "$dir/leaf.ext" -out "$dir/cert.pem" >/dev/null 2>&1
    tls="  tls:
    certificate: $dir/cert.pem
    key: $dir/key.pem"
    scheme=https
  fi
  cat > "$dir/config.yml" <<CFG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: ${accesslog_off}
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$tls
$auth
CFG
  stop_pidfile "$dir/registry.pid"
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  if ! wait_for curl -sk -o /dev/null "$scheme://127.0.0.1:$port/v2/"; then
    cat "$dir/registry.log" >&2; die "registry did not start on 127.0.0.1:$port"
  fi
  echo "registry: 127.0.0.1:$port (pid $(cat "$dir/registry.pid"))"
  ;;
stop) stop_pidfile "$dir/registry.pid" ;;
*) die "unknown command $cmd" ;;
esac
