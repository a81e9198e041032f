#!/usr/bin/env bash
# Local Apache Kafka (KRaft) on loopback ports, for development, tests and the
# demo: one combined broker+controller node by default, or a 3-node cluster
# (every node a broker and a voter of the controller quorum) for failover
# tests. The jars come from Maven Central (deploy/kafka/pom.xml), resolved once
# into deploy/kafka/lib.
#
#   deploy/broker.sh start|stop|status [--brokers 1|3]
#   deploy/broker.sh kill-node I      SIGKILL cluster node I (1..3)
#   deploy/broker.sh start-node I     restart cluster node I on its existing data
#   deploy/broker.sh jars
#
# Environment (all optional):
#   RECPRICE_BROKER_PORT   client port on 127.0.0.1 (default 19092; controller = port+1)
#   RECPRICE_BROKER_DIR    data, logs and pid file (default .broker/ in the checkout)
#   RECPRICE_CLUSTER_PORT  the cluster's base port (default 19192): node I serves
#                          clients on base+10*(I-1) and its controller on that + 1,
#                          i.e. 19192/19193, 19202/19203, 19212/19213
#   RECPRICE_CLUSTER_DIR   one node-I/ folder per node (default .broker-cluster/)
#
# The cluster's topics default to replication factor 3 and min.insync.replicas
# 2 (Kafka's internal topics too), so it keeps accepting acks=all writes with
# one node down. It runs beside the single broker: their ports differ.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
LIB="$HERE/kafka/lib"
SINGLE_PORT="${RECPRICE_BROKER_PORT:-19092}"
SINGLE_DIR="${RECPRICE_BROKER_DIR:-$ROOT/.broker}"
CLUSTER_PORT="${RECPRICE_CLUSTER_PORT:-19192}"
CLUSTER_DIR="${RECPRICE_CLUSTER_DIR:-$ROOT/.broker-cluster}"
NODES=3
USAGE="usage: deploy/broker.sh start|stop|status [--brokers 1|3] | kill-node I | start-node I | jars"

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

# A Kafka Uuid (base64url of 16 random bytes, unpadded) without a JVM start;
# like Kafka's own, none starts with "-", which would read as a flag.
uuid() {
  local id="-"
  while [ "${id:0:1}" = "-" ]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "$id"
}

# select_at NAME ID PORT DIR XMS XMX: the variables below describe the node
# that the functions after them act on.
select_at() {
  NAME="$1"
  NODE_ID="$2"
  PORT="$3"
  CONTROLLER_PORT="$((PORT + 1))"
  DIR="$4"
  PIDFILE="$DIR/broker.pid"
  LOG="$DIR/broker.log"
  HEAP=(-Xms"$5" -Xmx"$6")
}

# Selects the single broker.
select_single() { select_at broker 1 "$SINGLE_PORT" "$SINGLE_DIR" 256m 1g; }

# Selects cluster node $1 (1..NODES).
select_node() {
  select_at "node $1" "$1" "$((CLUSTER_PORT + 10 * ($1 - 1)))" "$CLUSTER_DIR/node-$1" 128m 512m
}

# alive PID: whether the process runs (an unreaped zombie does not).
alive() {
  kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]
}

running() {
  [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"
}

answers() {
  # A TCP connect to the client port is the cheapest "it answers" check that
  # needs no Kafka client; the start command below also waits for the log line.
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

# The cluster's controller quorum: every node's controller listener.
quorum() {
  local i out=""
  for i in $(seq 1 "$NODES"); do
    out="${out:+$out,}127.0.0.1:$((CLUSTER_PORT + 10 * (i - 1) + 1))"
  done
  echo "$out"
}

# write_config QUORUM REPLICATION MIN_ISR: the selected node's server.properties.
write_config() {
  mkdir -p "$DIR"
  cat >"$DIR/server.properties" <<CFG
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.bootstrap.servers=$1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
offsets.topic.replication.factor=$2
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$2
transaction.state.log.min.isr=$3
share.coordinator.state.topic.replication.factor=$2
share.coordinator.state.topic.min.isr=$3
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=16777216
CFG
  if [ "$2" -gt 1 ]; then
    # A SIGKILLed node is fenced (and leaves every ISR) after the session
    # timeout; 6 s instead of 9 s shortens the stall of acks=all writes.
    cat >>"$DIR/server.properties" <<CFG
default.replication.factor=$2
min.insync.replicas=$3
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
CFG
  fi
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
  JAVA=(java "${HEAP[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$LIB/*")
}

# format ARGS...: format the selected node's storage once (StorageTool's flags).
format() {
  [ -f "$DIR/data/meta.properties" ] && return 0
  java_cmd
  "${JAVA[@]}" kafka.tools.StorageTool format -c "$DIR/server.properties" "$@" \
    >"$DIR/format.log" 2>&1 || die "formatting $NAME's KRaft storage failed: $(cat "$DIR/format.log")"
}

# Starts the selected node in the background; `started` waits for it.
launch() {
  java_cmd
  # A fresh log, so that the start-up line found below is this run's.
  [ -f "$LOG" ] && mv "$LOG" "$LOG.1"
  # setsid: the broker outlives the shell that started it (tests, make).
  setsid "${JAVA[@]}" kafka.Kafka "$DIR/server.properties" >"$DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
}

# Whether the selected node has started. KRaft logs "Kafka Server started"
# only once the broker is registered with the controller quorum and unfenced.
started() {
  answers && grep -q "Kafka Server started" "$LOG" 2>/dev/null
}

# wait_started NODE...: wait until each node (a number, or "single") has started.
wait_started() {
  local n left
  for _ in $(seq 1 240); do
    left=0
    for n in "$@"; do
      if [ "$n" = single ]; then select_single; else select_node "$n"; fi
      started && continue
      running || die "$NAME exited during start-up; see $LOG and $DIR/stdout.log"
      left=1
    done
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  die "$NAME did not start within 120 s; see $LOG"
}

# stop_pids LABEL=PID...: SIGTERM them all at once, then SIGKILL what is left after
# 30 s (an empty label: the single broker).
stop_pids() {
  local entry left label
  for entry in "$@"; do kill "${entry#*=}" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    left=0
    for entry in "$@"; do
      if alive "${entry#*=}"; then left=1; fi
    done
    [ "$left" = 0 ] && break
    sleep 0.5
  done
  for entry in "$@"; do
    label="${entry%%=*}"
    if alive "${entry#*=}"; then
      kill -9 "${entry#*=}" 2>/dev/null || true
      echo "broker: ${label:+$label }killed after 30 s without a clean stop"
    else
      echo "broker: ${label:+$label }stopped"
    fi
  done
}

start_single() {
  select_single
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  if running && answers; then
    echo "broker: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  answers && die "port $PORT on 127.0.0.1 is taken by another process"
  jars
  write_config "127.0.0.1:$CONTROLLER_PORT" 1 1
  format --standalone -t "$(uuid)"
  launch
  wait_started single
  echo "broker: started on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
}

# The cluster id and the initial voters (id@host:port:directory-id), chosen
# once: every node must be formatted with the same values.
cluster_ids() {
  mkdir -p "$CLUSTER_DIR"
  [ -f "$CLUSTER_DIR/cluster.id" ] || uuid >"$CLUSTER_DIR/cluster.id"
  if [ ! -f "$CLUSTER_DIR/controllers" ]; then
    local i out=""
    for i in $(seq 1 "$NODES"); do
      out="${out:+$out,}$i@127.0.0.1:$((CLUSTER_PORT + 10 * (i - 1) + 1)):$(uuid)"
    done
    echo "$out" >"$CLUSTER_DIR/controllers"
  fi
}

# start_nodes I...: start these cluster nodes (those not running) and wait for them.
start_nodes() {
  local i
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  jars
  cluster_ids
  for i in "$@"; do
    select_node "$i"
    running && continue
    answers && die "port $PORT on 127.0.0.1 (for $NAME) is taken by another process"
    write_config "$(quorum)" 3 2
    format -t "$(cat "$CLUSTER_DIR/cluster.id")" --initial-controllers "$(cat "$CLUSTER_DIR/controllers")"
  done
  for i in "$@"; do
    select_node "$i"
    running || launch
  done
  # A node alone waits for a quorum: all of them start before any is awaited.
  wait_started "$@"
  for i in "$@"; do
    select_node "$i"
    echo "broker: $NAME up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  done
}

start_cluster() {
  start_nodes $(seq 1 "$NODES")
}

stop_single() {
  select_single
  if ! running; then
    rm -f "$PIDFILE"
    echo "broker: not running"
    return 0
  fi
  stop_pids "=$(cat "$PIDFILE")"
  rm -f "$PIDFILE"
}

stop_cluster() {
  local i pids=()
  # All at once: each node's broker shuts down while every controller still
  # runs, so no node is left waiting for a lost quorum.
  for i in $(seq 1 "$NODES"); do
    select_node "$i"
    if running; then pids+=("node $i=$(cat "$PIDFILE")"); else rm -f "$PIDFILE"; fi
  done
  if [ "${#pids[@]}" = 0 ]; then
    echo "broker: cluster not running"
    return 0
  fi
  stop_pids "${pids[@]}"
  for i in $(seq 1 "$NODES"); do select_node "$i"; rm -f "$PIDFILE"; done
}

kill_node() {
  select_node "$1"
  if ! running; then
    rm -f "$PIDFILE"
    echo "broker: $NAME not running"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -9 "$pid"
  for _ in $(seq 1 100); do
    if alive "$pid"; then sleep 0.1; else break; fi
  done
  rm -f "$PIDFILE"
  echo "broker: $NAME killed (pid $pid)"
}

status_single() {
  select_single
  if running && answers; then
    echo "broker: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "broker: not running"
    return 1
  fi
}

status_cluster() {
  local i rc=0
  for i in $(seq 1 "$NODES"); do
    select_node "$i"
    if running && answers; then
      echo "broker: $NAME running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    else
      echo "broker: $NAME not running (127.0.0.1:$PORT)"
      rc=1
    fi
  done
  return "$rc"
}

# node_arg I: check a cluster node number.
node_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ] \
    || die "a node number 1..$NODES, not '${1:-}'; $USAGE"
}

ACTION="${1:-}"
shift || true
BROKERS=1
case "$ACTION" in
  start | stop | status)
    while [ $# -gt 0 ]; do
      case "$1" in
        --brokers) BROKERS="${2:-}"; shift 2 || die "$USAGE" ;;
        --brokers=*) BROKERS="${1#*=}"; shift ;;
        *) die "$USAGE" ;;
      esac
    done
    case "$BROKERS" in
      1) "${ACTION}_single" ;;
      "$NODES") "${ACTION}_cluster" ;;
      *) die "--brokers is 1 (a single broker) or $NODES (a cluster), not '$BROKERS'" ;;
    esac
    ;;
  kill-node) node_arg "${1:-}"; kill_node "$1" ;;
  start-node) node_arg "${1:-}"; start_nodes "$1" ;;
  jars) jars ;;
  *) die "$USAGE" ;;
esac
