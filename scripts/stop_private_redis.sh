#!/usr/bin/env bash
# Stop the private redis-server started by scripts/ensure_redis.sh (and only that one: the
# process named in .redis-test/redis.pid). Safe to run when none is running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$ROOT/.redis-test"
PIDFILE="$STATE_DIR/redis.pid"
PORTFILE="$STATE_DIR/port"

log() { printf 'stop_private_redis: %s\n' "$*" >&2; }

if [[ ! -f "$PIDFILE" ]]; then
  log "no private redis-server (no $PIDFILE)"
  rm -f "$PORTFILE"
  exit 0
fi

pid="$(tr -dc '0-9' <"$PIDFILE")"
if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
  log "private redis-server (pid ${pid:-?}) is not running"
  rm -f "$PIDFILE" "$PORTFILE"
  exit 0
fi

# Never signal a recycled pid that is not our redis-server.
if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'redis-server'; then
  log "pid $pid is not a redis-server any more; leaving it alone"
  rm -f "$PIDFILE" "$PORTFILE"
  exit 0
fi

log "stopping private redis-server (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do   # ~5 s
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  log "pid $pid still alive after 5 s; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE" "$PORTFILE"
log "stopped"
