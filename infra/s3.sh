#!/usr/bin/env bash
# Starts (or reuses) a local S3 API endpoint for tidelake's tests: moto's server (from PyPI), with its
# conditional writes made atomic (infra/s3_server.py).
#
#   infra/s3.sh start    start it, print its endpoint URL
#   infra/s3.sh stop     stop the server this script started
#
# Environment:
#   TIDELAKE_S3_PORT   port (default 19000)
#   TIDELAKE_S3_DIR    state: pid and log (default: <repo>/target/s3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
port="${TIDELAKE_S3_PORT:-19000}"
state="${TIDELAKE_S3_DIR:-$repo/target/s3}"
endpoint="http://127.0.0.1:$port"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  mkdir -p "$state"
  # Concurrent callers start one server: the first starts it, the others then find it answering.
  exec 9>"$state/.start.lock"
  flock 9
  if port_open "$port"; then
    echo "s3.sh: reusing the S3 endpoint at $endpoint" >&2
    echo "$endpoint"
    return
  fi
  local python
  python="$("$here/python.sh")"
  echo "s3.sh: starting the S3 endpoint (moto) on $endpoint" >&2
  nohup "$python" "$here/s3_server.py" 127.0.0.1 "$port" >"$state/moto.log" 2>&1 9>&- &
  echo $! >"$state/pid"
  for _ in $(seq 1 60); do
    if port_open "$port"; then echo "$endpoint"; return; fi
    sleep 0.5
  done
  echo "s3.sh: moto server did not start within 30 s" >&2
  tail -20 "$state/moto.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then kill "$(cat "$state/pid")"; fi
  rm -f "$state/pid"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
