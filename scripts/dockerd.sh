#!/usr/bin/env bash
# A private dockerd (Debian's docker.io 20.10, trixie's 26.1 or Debian
# testing's, 28.5 today, each of the last two with either store:
# DOCKERD_VARIANT below) with its own socket, data root, exec root and
# pidfile; no iptables changes.
#
#   scripts/dockerd.sh start DIR [POOL]  # socket at DIR/docker.sock; POOL 100-249 picks
#                                        # 10.POOL.0.0/16 for its networks
#   scripts/dockerd.sh stop DIR      # also removes containers it ran
#
# DIR should be short: unix socket paths are limited to 108 bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: dockerd.sh start|stop DIR"
DOCKER=/usr/bin/docker
# DOCKERD_VARIANT picks the engine: 20.10 (Debian's docker.io, classic
# store, the default), 26 (trixie's 26.1 from $DOCKER26, overlay2) or
# 26-containerd (the same with the containerd image store, the default of
# Docker 29 and Docker Desktop), testing (Debian testing's docker.io and
# containerd from $DOCKER_TESTING, 28.5 with containerd 2.1 today, with
# overlay2, the store Docker 28 still sets up by default) or
# testing-containerd (the same with the containerd store).
# scripts/install-deps.sh unpacks both.
DOCKER26=${DOCKER26:-/opt/docker26}
DOCKER_TESTING=${DOCKER_TESTING:-/opt/docker-testing}
variant=${DOCKERD_VARIANT:-20.10}
prefix=
case "$variant" in
20.10) dockerd=/usr/sbin/dockerd; store=(--storage-driver overlay2) ;;
26) prefix=$DOCKER26; store=(--storage-driver overlay2) ;;
26-containerd) prefix=$DOCKER26; store=(--config-file "$dir/daemon.json" --storage-driver overlayfs) ;;
testing) prefix=$DOCKER_TESTING; store=(--storage-driver overlay2) ;;
testing-containerd) prefix=$DOCKER_TESTING; store=(--config-file "$dir/daemon.json" --storage-driver overlayfs) ;;
*) die "unknown DOCKERD_VARIANT $variant (20.10, 26, 26-containerd, testing, testing-containerd)" ;;
esac
[ -z "$prefix" ] || dockerd=$prefix/usr/sbin/dockerd
case "$cmd" in
start)
  pool=${3:-$(( $(echo -n "$dir" | cksum | cut -d' ' -f1) % 150 + 100 ))}
  mkdir -p "$dir/data" "$dir/exec"
  stop_pidfile "$dir/dockerd.pid"
  echo '{"features": {"containerd-snapshotter": true}}' >"$dir/daemon.json"
  # A prefix's dockerd finds its own containerd first; runc is bookworm's
  # (trixie's needs glibc 2.38).
  [ -z "$prefix" ] || export PATH="$prefix/usr/bin:$prefix/usr/sbin:$PATH"
  "$dockerd" \
    -H "unix://$dir/docker.sock" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" \
    --iptables=false --ip-masq=false --ip-forward=false \
    --bridge=none \
    --default-address-pool "base=10.$pool.0.0/16,size=24" \
    "${store[@]}" \
    --log-level warn \
    >"$dir/dockerd.log" 2>&1 &
  if ! wait_for $DOCKER -H "unix://$dir/docker.sock" info; then
    tail -30 "$dir/dockerd.log" >&2; die "dockerd did not start"
  fi
  echo "dockerd: unix://$dir/docker.sock (pid $(cat "$dir/dockerd.pid"))"
  ;;
stop)
  if [ -S "$dir/docker.sock" ]; then
    ids=$($DOCKER -H "unix://$dir/docker.sock" ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $DOCKER -H "unix://$dir/docker.sock" rm -f $ids >/dev/null 2>&1 || true
  fi
  stop_pidfile "$dir/dockerd.pid"
  # containerd-shims exit with their containers; unmount anything left.
  grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ;;
*) die "unknown command $cmd" ;;
esac
