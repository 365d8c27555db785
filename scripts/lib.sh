# Shared helpers for the scripts: sourced, not run.
# Every server started here listens on 127.0.0.1 only and records its PID in
# its own state dir, so it is stopped by PID, never by name.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# wait_for CMD... : retry CMD for up to 60 s.
wait_for() {
  local i
  for i in $(seq 1 240); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

# stop_pidfile FILE : TERM, wait, then KILL the process whose PID is in FILE.
stop_pidfile() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# free_port : a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
