#!/usr/bin/env bash
# Print (last line of stdout) a Redis URL the test suite may use. Messages go to stderr.
#
#   1. $BOUNDARY_TEST_REDIS_URL, if set and it answers PING;
#   2. else redis://127.0.0.1:6379/9 if a Redis answers there (tests use DB 9 and their own
#      key prefixes);
#   3. else a private redis-server on a free port (installed with apt-get when missing and we
#      are root), state in .redis-test/ at the repo root: redis://127.0.0.1:PORT/0.
#      A private server already running from an earlier call is reused.
#
# BOUNDARY_FORCE_PRIVATE_REDIS=1 skips steps 1 and 2.
# Stop the private server with scripts/stop_private_redis.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$ROOT/.redis-test"
PIDFILE="$STATE_DIR/redis.pid"
PORTFILE="$STATE_DIR/port"
LOGFILE="$STATE_DIR/redis.log"

if [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="$(command -v python3 || true)"
fi

log() { printf 'ensure_redis: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# with_timeout SECONDS CMD...: run CMD, bounded when coreutils' timeout exists.
with_timeout() {
  local secs="$1"; shift
  if command -v timeout >/dev/null 2>&1; then
    timeout "$secs" "$@"
  else
    "$@"
  fi
}

# ping_url URL: succeed when the Redis at URL answers PING.
ping_url() {
  local url="$1" reply=""
  if command -v redis-cli >/dev/null 2>&1; then
    reply="$(with_timeout 3 redis-cli --no-auth-warning -u "$url" ping 2>/dev/null || true)"
    [[ "$reply" == "PONG" ]] && return 0
    # redis-cli cannot do every URL (rediss:// without TLS support): let redis-py try.
  fi
  [[ -n "$PY" ]] || return 1
  with_timeout 5 "$PY" - "$url" >/dev/null 2>&1 <<'EOF'
import sys

import redis

client = redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2, socket_timeout=2)
sys.exit(0 if client.ping() else 1)
EOF
}

# ping_host_port HOST PORT
ping_host_port() {
  local host="$1" port="$2" reply=""
  if command -v redis-cli >/dev/null 2>&1; then
    reply="$(with_timeout 3 redis-cli -h "$host" -p "$port" ping 2>/dev/null || true)"
    [[ "$reply" == "PONG" ]]
    return
  fi
  ping_url "redis://$host:$port/0"
}

free_port() {
  [[ -n "$PY" ]] || die "python3 is needed to pick a free port"
  "$PY" - <<'EOF'
import socket

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
EOF
}

# Is the pid in the pidfile a live redis-server?
private_pid_alive() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'redis-server' || return 1
  fi
  return 0
}

# --- 1. an explicitly given URL ---------------------------------------------------------
if [[ "${BOUNDARY_FORCE_PRIVATE_REDIS:-0}" != "1" ]]; then
  if [[ -n "${BOUNDARY_TEST_REDIS_URL:-}" ]]; then
    if ping_url "$BOUNDARY_TEST_REDIS_URL"; then
      log "using BOUNDARY_TEST_REDIS_URL (answers PING)"
      printf '%s\n' "$BOUNDARY_TEST_REDIS_URL"
      exit 0
    fi
    log "BOUNDARY_TEST_REDIS_URL is set but does not answer PING; looking further"
  fi

  # --- 2. a Redis on the default port ---------------------------------------------------
  if ping_host_port 127.0.0.1 6379; then
    log "a Redis answers on 127.0.0.1:6379; tests use DB 9"
    printf '%s\n' "redis://127.0.0.1:6379/9"
    exit 0
  fi
  log "no Redis on 127.0.0.1:6379"
else
  log "BOUNDARY_FORCE_PRIVATE_REDIS=1: skipping the existing-server probes"
fi

# --- 3. a private redis-server ----------------------------------------------------------
mkdir -p "$STATE_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE_DIR/lock"
  flock -w 30 9 || die "could not lock $STATE_DIR/lock"
fi

if private_pid_alive && [[ -f "$PORTFILE" ]]; then
  port="$(tr -dc '0-9' <"$PORTFILE")"
  if [[ -n "$port" ]] && ping_host_port 127.0.0.1 "$port"; then
    log "reusing the private redis-server (pid $(cat "$PIDFILE"), port $port)"
    printf '%s\n' "redis://127.0.0.1:$port/0"
    exit 0
  fi
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    log "redis-server missing; installing it with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  else
    die "redis-server is not installed and cannot be installed here (needs root and apt-get);" \
      "install redis-server or set BOUNDARY_TEST_REDIS_URL"
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get"
fi

port="$(free_port)"
rm -f "$PIDFILE"
log "starting a private redis-server on 127.0.0.1:$port (state in $STATE_DIR)"
# Absolute paths: redis-server changes into --dir before it writes the pidfile.
# 9>&-: the daemon must not inherit (and so hold) the lock.
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$PIDFILE" --logfile "$LOGFILE" --dir "$STATE_DIR" >&2 9>&- \
  || die "redis-server failed to start; see $LOGFILE"
printf '%s\n' "$port" >"$PORTFILE"

for _ in $(seq 1 50); do   # ~10 s
  if ping_host_port 127.0.0.1 "$port"; then
    log "private redis-server is up (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'), port $port)"
    printf '%s\n' "redis://127.0.0.1:$port/0"
    exit 0
  fi
  sleep 0.2
done

log "private redis-server did not answer within 10 s; last log lines:"
tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
if private_pid_alive; then
  kill "$(tr -dc '0-9' <"$PIDFILE")" 2>/dev/null || true
fi
die "no Redis available for the tests"
