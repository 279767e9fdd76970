#!/usr/bin/env bash
# Starts (or reuses) a single-node Apache Kafka broker in KRaft mode on 127.0.0.1 for tidelake's tests.
#
#   infra/kafka.sh start    fetch the broker jars (Maven Central, cached), start the broker, print its bootstrap
#   infra/kafka.sh stop     stop the broker this script started
#   infra/kafka.sh status   print the bootstrap address if the broker answers, exit 1 otherwise
#
# Environment:
#   TIDELAKE_CACHE       cache folder kept across runs (default: ~/.cache/tidelake); jars go to kafka-<version>/
#   TIDELAKE_KAFKA_PORT  client port (default 19092; the controller listens on the next port)
#   TIDELAKE_KAFKA_DIR   broker state: data, logs, pid (default: <repo>/target/kafka)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")"
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
libs="$cache/kafka-$version/libs"
port="${TIDELAKE_KAFKA_PORT:-19092}"
controller_port=$((port + 1))
state="${TIDELAKE_KAFKA_DIR:-$repo/target/kafka}"
bootstrap="127.0.0.1:$port"

log() { echo "kafka.sh: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  log "fetching Apache Kafka $version jars from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -Dmaven.repo.local="$cache/m2" -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ]; then echo "$JAVA_HOME/bin/java"; else command -v java; fi
}

write_config() {
  mkdir -p "$state/data"
  cat >"$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=1000000
PROPS
  cat >"$state/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $state/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
PROPS
}

start() {
  mkdir -p "$state"
  # Concurrent callers start one broker: the first starts it, the others then find it answering.
  exec 9>"$state/.start.lock"
  flock 9
  if port_open "$port"; then
    log "reusing the broker that answers on $bootstrap"
    echo "$bootstrap"
    return
  fi
  fetch
  write_config
  local java
  java="$(java_bin)"
  local jvm=(-Xms256m -Xmx768m -XX:+UseG1GC -Dlog4j2.configurationFile="$state/log4j2.properties" -cp "$libs/*")
  if [ ! -f "$state/data/meta.properties" ]; then
    log "formatting broker storage in $state/data"
    "$java" "${jvm[@]}" kafka.tools.StorageTool format -t "tidelake-test-cluster1" \
      -c "$state/server.properties" >"$state/format.log" 2>&1 || { cat "$state/format.log" >&2; exit 1; }
  fi
  log "starting Apache Kafka $version on $bootstrap (logs: $state/server.log)"
  # A restart in the same folder: only this start's lines may say it has started.
  if [ -f "$state/server.log" ]; then mv "$state/server.log" "$state/server.log.previous"; fi
  nohup "$java" "${jvm[@]}" kafka.Kafka "$state/server.properties" >"$state/stdout.log" 2>&1 9>&- &
  echo $! >"$state/pid"
  for _ in $(seq 1 120); do
    if grep -q "Kafka Server started" "$state/server.log" 2>/dev/null && port_open "$port"; then
      echo "$bootstrap"
      return
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "the broker exited during start-up:"; tail -30 "$state/stdout.log" "$state/server.log" >&2 || true; exit 1
    fi
    sleep 0.5
  done
  log "the broker did not start within 60 s"; tail -30 "$state/server.log" >&2 || true; exit 1
}

stop() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    kill "$(cat "$state/pid")"
    for _ in $(seq 1 60); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.5; done
    # A broker still shutting down after 30 s would keep its port and log folder from the next
    # start (which would then take it for a running broker): it is killed.
    if kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "the broker did not stop within 30 s; killing it"
      kill -9 "$(cat "$state/pid")"
      for _ in $(seq 1 20); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  rm -f "$state/pid"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if port_open "$port"; then echo "$bootstrap"; else exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
