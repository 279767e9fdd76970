#!/usr/bin/env bash
# Starts (or reuses) a schema registry on 127.0.0.1 for tidelake's tests: Apicurio Registry, whose
# Confluent-compatible API (the one producers' serializers and tidelake speak) lives under
# /apis/ccompat/v7. It keeps schemas in memory: a restart starts empty.
#
#   infra/schema-registry.sh start    fetch the registry (Maven Central, cached), start it, print its API URL
#   infra/schema-registry.sh stop     stop the registry this script started
#   infra/schema-registry.sh status   print the API URL if the registry answers, exit 1 otherwise
#
# Environment:
#   TIDELAKE_CACHE          cache folder kept across runs (default: ~/.cache/tidelake)
#   TIDELAKE_REGISTRY_PORT  API port (default 18081; health checks on the next port)
#   TIDELAKE_REGISTRY_DIR   registry state: logs, pid (default: <repo>/target/schema-registry)
#   JAVA_HOME               a Java 21 or newer to run it with (else the first found on PATH or in /usr/lib/jvm)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's:.*<registry.version>\(.*\)</registry.version>.*:\1:p' "$here/schema-registry/pom.xml")"
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
home="$cache/apicurio-registry-$version"
port="${TIDELAKE_REGISTRY_PORT:-18081}"
management_port=$((port + 1))
state="${TIDELAKE_REGISTRY_DIR:-$repo/target/schema-registry}"
url="http://127.0.0.1:$port/apis/ccompat/v7"

log() { echo "schema-registry.sh: $*" >&2; }

answers() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()' "$url/subjects" 2>/dev/null
}

fetch() {
  if [ -f "$home/.complete" ]; then return; fi
  log "fetching Apicurio Registry $version from Maven Central into $home"
  rm -rf "$home"
  mkdir -p "$home"
  mvn -q -B -Dmaven.repo.local="$cache/m2" -f "$here/schema-registry/pom.xml" dependency:unpack \
    -Dartifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all" -DoutputDirectory="$home" >&2
  if [ ! -f "$home/quarkus-run.jar" ]; then
    local jar
    jar="$(find "$home" -name quarkus-run.jar | head -1)"
    [ -n "$jar" ] || { log "the distribution holds no quarkus-run.jar"; exit 1; }
    echo "$(dirname "$jar")" >"$home/.app"
  else
    echo "$home" >"$home/.app"
  fi
  touch "$home/.complete"
}

# The registry is built for Java 21: the first Java of 21 or newer among JAVA_HOME, PATH and the
# system's JVM folder.
java_bin() {
  local candidates=()
  if [ -n "${JAVA_HOME:-}" ]; then candidates+=("$JAVA_HOME/bin/java"); fi
  if command -v java >/dev/null; then candidates+=("$(command -v java)"); fi
  for j in /usr/lib/jvm/*/bin/java; do [ -x "$j" ] && candidates+=("$j"); done
  for j in "${candidates[@]}"; do
    local major
    major="$("$j" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    if [ -n "$major" ] && [ "$major" -ge 21 ]; then echo "$j"; return; fi
  done
  log "no Java 21 or newer found (JAVA_HOME, PATH, /usr/lib/jvm); the schema registry needs one"
  exit 1
}

start() {
  mkdir -p "$state"
  exec 9>"$state/.start.lock"
  flock 9
  if answers; then
    log "reusing the registry that answers on $url"
    echo "$url"
    return
  fi
  fetch
  local java app
  java="$(java_bin)"
  app="$(cat "$home/.app")"
  log "starting Apicurio Registry $version on $url (logs: $state/registry.log)"
  # Run from its state folder, so whatever it writes beside it lands there; fd 9 (the start lock)
  # is closed for it, or the lock would be held as long as the registry runs.
  cd "$state"
  nohup "$java" -Xms64m -Xmx512m \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$management_port" \
    -jar "$app/quarkus-run.jar" >"$state/registry.log" 2>&1 9>&- &
  echo $! >"$state/pid"
  for _ in $(seq 1 240); do
    if answers; then echo "$url"; return; fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "the registry exited during start-up:"; tail -30 "$state/registry.log" >&2 || true; exit 1
    fi
    sleep 0.5
  done
  log "the registry did not answer within 120 s"; tail -30 "$state/registry.log" >&2 || true; exit 1
}

stop() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    kill "$(cat "$state/pid")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$(cat "$state/pid")" 2>/dev/null || true
  fi
  rm -f "$state/pid"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "$url"; else exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
