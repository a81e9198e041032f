#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) on a loopback port, for development,
# tests and the demo. The jars come from Maven Central (deploy/kafka/pom.xml),
# resolved once into deploy/kafka/lib.
#
#   deploy/broker.sh start|stop|status|jars
#
# Environment (all optional):
#   RECPRICE_BROKER_PORT   client port on 127.0.0.1 (default 19092; controller = port+1)
#   RECPRICE_BROKER_DIR    data, logs and pid file (default .broker/ in the checkout)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PORT="${RECPRICE_BROKER_PORT:-19092}"
CONTROLLER_PORT="$((PORT + 1))"
DIR="${RECPRICE_BROKER_DIR:-$ROOT/.broker}"
LIB="$HERE/kafka/lib"
PIDFILE="$DIR/broker.pid"
LOG="$DIR/broker.log"

die() { echo "broker: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; $2"
}

jars() {
  if [ -f "$LIB/.complete" ]; then return 0; fi
  need mvn "install Maven (Debian: apt-get install maven) to resolve the Kafka jars"
  echo "broker: resolving Kafka jars from Maven Central into $LIB" >&2
  rm -rf "$LIB"
  mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIB" >&2 \
    || die "mvn could not resolve the Kafka jars (see output above)"
  touch "$LIB/.complete"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
  # A TCP connect to the client port is the cheapest "it answers" check that
  # needs no Kafka client; the start command below also waits for the log line.
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

write_config() {
  cat >"$DIR/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=16777216
CFG
  cat >"$DIR/log4j2.properties" <<CFG
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=FILE
appender.file.type=File
appender.file.name=FILE
appender.file.fileName=$LOG
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
CFG
}

java_cmd() {
  JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$LIB/*")
}

start() {
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  if running && answers; then
    echo "broker: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  answers && die "port $PORT on 127.0.0.1 is taken by another process"
  jars
  java_cmd
  mkdir -p "$DIR"
  write_config
  if [ ! -f "$DIR/data/meta.properties" ]; then
    "${JAVA[@]}" kafka.tools.StorageTool format --standalone \
      -t "$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid)" \
      -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 \
      || die "formatting KRaft storage failed: $(cat "$DIR/format.log")"
  fi
  # setsid: the broker outlives the shell that started it (tests, make).
  setsid "${JAVA[@]}" kafka.Kafka "$DIR/server.properties" >"$DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if answers && grep -q "Kafka Server started" "$LOG" 2>/dev/null; then
      echo "broker: started on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
      return 0
    fi
    running || die "broker exited during start-up; see $LOG and $DIR/stdout.log"
    sleep 0.5
  done
  die "broker did not answer on 127.0.0.1:$PORT within 60 s; see $LOG"
}

stop() {
  if ! running; then
    rm -f "$PIDFILE"
    echo "broker: not running"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; echo "broker: stopped"; return 0; }
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "broker: killed after 30 s without a clean stop"
}

status() {
  if running && answers; then
    echo "broker: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "broker: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  jars) jars ;;
  *) die "usage: deploy/broker.sh start|stop|status|jars" ;;
esac
