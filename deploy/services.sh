#!/usr/bin/env bash
# Starts or stops the local services Argus talks to: Redis and a Kafka-protocol broker
# (tansu, in memory). Each set of services has a name and its own ports and state folder,
# so `make run` (name "local") and `make test` (name "test") never collide.
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
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" --dir "$state"
    wait_for_port "$redis_port" "redis-server" "$state/redis.log"
    log "Redis on 127.0.0.1:$redis_port"
  fi

  if alive "$state/tansu.pid"; then
    :
  elif listening "$kafka_port"; then
    log "port $kafka_port already answers: using that Kafka broker"
  else
    nohup "$ARGUS_TANSU" broker \
      --listener-url "tcp://127.0.0.1:$kafka_port" \
      --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
      --storage-engine memory://tansu/ >"$state/tansu.log" 2>&1 &
    echo $! >"$state/tansu.pid"
    wait_for_port "$kafka_port" "tansu" "$state/tansu.log"
    log "Kafka-protocol broker (tansu, in memory) on 127.0.0.1:$kafka_port"
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
