#!/usr/bin/env bash
# Starts or stops the local services Argus talks to: Redis and a Kafka-protocol broker
# (tansu). Each set of services has a name and its own ports and state folder, so `make run`
# (name "local") and `make test` (name "test") never collide.
#
# "local" is durable: Redis appends every write to its AOF (fsync every second) and the
# broker keeps its topics in SQLite, both in the state folder ($ARGUS_CACHE/run/local), so
# `make stop && make run` or a reboot keeps the moment index, captions, alerts and topics.
# "test" is ephemeral (no AOF, broker in memory): every test run starts clean.
# ARGUS_DURABLE=1 or 0 overrides that choice for any name.
#
#   deploy/services.sh start [NAME]     start what is not already running
#   deploy/services.sh stop [NAME]      stop what this script started
#   deploy/services.sh status [NAME]
#
# Ports: ARGUS_KAFKA_PORT, ARGUS_REDIS_PORT (defaults: local 9092/6379, test 19092/16379).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/env.sh
source "$here/env.sh"

action="${1:-status}"
name="${2:-local}"
case "$name" in
  local) kafka_port="${ARGUS_KAFKA_PORT:-9092}"; redis_port="${ARGUS_REDIS_PORT:-6379}" ;;
  test)  kafka_port="${ARGUS_KAFKA_PORT:-19092}"; redis_port="${ARGUS_REDIS_PORT:-16379}" ;;
  *)     kafka_port="${ARGUS_KAFKA_PORT:?set ARGUS_KAFKA_PORT}"; redis_port="${ARGUS_REDIS_PORT:?set ARGUS_REDIS_PORT}" ;;
esac
case "$name" in
  local) durable="${ARGUS_DURABLE:-1}" ;;
  *) durable="${ARGUS_DURABLE:-0}" ;;
esac
state="$ARGUS_CACHE/run/$name"
mkdir -p "$state"

log() { printf '\033[1m[services:%s]\033[0m %s\n' "$name" "$*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for_port() {
  local port="$1" what="$2" logfile="$3"
  for _ in $(seq 1 100); do
    if listening "$port"; then return 0; fi
    sleep 0.1
  done
  log "$what did not open port $port; its log ($logfile):"
  tail -n 20 "$logfile" >&2 || true
  return 1
}

start() {
  if alive "$state/redis.pid"; then
    :
  elif listening "$redis_port"; then
    log "port $redis_port already answers: using that Redis"
  else
    local persistence=(--save '' --appendonly no) kept="nothing is kept"
    if [ "$durable" = 1 ]; then
      persistence=(--save '' --appendonly yes --appendfsync everysec)
      kept="append-only file in $state"
    fi
    redis-server --port "$redis_port" --bind 127.0.0.1 "${persistence[@]}" \
      --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" --dir "$state"
    wait_for_port "$redis_port" "redis-server" "$state/redis.log"
    log "Redis on 127.0.0.1:$redis_port ($kept)"
  fi

  if alive "$state/tansu.pid"; then
    :
  elif listening "$kafka_port"; then
    log "port $kafka_port already answers: using that Kafka broker"
  else
    local tansu="$ARGUS_TANSU" storage="memory://tansu/" kept="in memory"
    if [ "$durable" = 1 ]; then
      # Relative to the broker's working folder (the state folder).
      tansu="$ARGUS_TANSU_DURABLE" storage="sqlite://tansu.db" kept="SQLite in $state/tansu.db"
    fi
    if [ ! -x "$tansu" ]; then
      log "the broker $tansu is not installed: run deploy/setup.sh"
      return 1
    fi
    (cd "$state" && exec nohup "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$kafka_port" \
      --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
      --storage-engine "$storage" >"$state/tansu.log" 2>&1) &
    echo $! >"$state/tansu.pid"
    wait_for_port "$kafka_port" "tansu" "$state/tansu.log"
    log "Kafka-protocol broker (tansu, $kept) on 127.0.0.1:$kafka_port"
  fi
}

stop_one() {
  local pidfile="$state/$1.pid"
  if alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $1"
  fi
  rm -f "$pidfile"
}

case "$action" in
  start) start ;;
  stop) stop_one tansu; stop_one redis ;;
  status)
    for service in redis tansu; do
      if alive "$state/$service.pid"; then echo "$service: running (pid $(cat "$state/$service.pid"))"; else echo "$service: stopped"; fi
    done
    echo "kafka: 127.0.0.1:$kafka_port  redis: 127.0.0.1:$redis_port"
    ;;
  *) echo "usage: $0 start|stop|status [NAME]" >&2; exit 64 ;;
esac
