"""What both benchmark apps share: the broker URL, the no-op job, the readiness marker.

Both apps read ``BENCH_REDIS_URL``. A job whose kwargs carry ``notify`` pushes that
token to ``bench:done`` from Celery's ``task_postrun`` signal, i.e. after the job (and,
for boundary-celery, its completion record) finished and before the late ack: the
harness BLPOPs that list to time end-to-end latency the same way for both systems.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import signals

NOOP = "bench.noop"
DONE_KEY = "bench:done"
READY_KEY = "bench:ready"

#: Same broker transport options for both apps (boundary-celery adds its own keys).
PRIORITY_STEPS = [0, 2, 4, 6, 8]  # boundary-celery's: one list per level, ints in pairs
SEP = "\x06\x16"
VISIBILITY_TIMEOUT_S = 3600

_client: list[redis.Redis] = []


def redis_url() -> str:
    """The private benchmark Redis (read when an app module is imported)."""
    url = os.environ.get("BENCH_REDIS_URL", "")
    if not url:
        raise RuntimeError("BENCH_REDIS_URL is not set (run python -m benchmarks)")
    return url


def client() -> redis.Redis:
    """One Redis client per process (created after the prefork fork)."""
    pid = os.getpid()
    if not _client or getattr(_client[0], "_bench_pid", None) != pid:
        c = redis.Redis.from_url(redis_url())
        c._bench_pid = pid  # type: ignore[attr-defined]
        _client[:] = [c]
    return _client[0]


def events_on() -> bool:
    """Task events (boundary's install() turns them on); ``BENCH_EVENTS=0`` turns them off
    for both systems (``python -m benchmarks --no-events``)."""
    return os.environ.get("BENCH_EVENTS", "1") != "0"


def events_conf() -> dict[str, Any]:
    return {"worker_send_task_events": events_on(), "task_send_sent_event": events_on()}


def common_conf() -> dict[str, Any]:
    """Celery settings both apps use (boundary's install() sets the same values)."""
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_acks_on_failure_or_timeout": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        **events_conf(),
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": True,
    }


@signals.task_postrun.connect(weak=False)
def _notify(kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    token = (kwargs or {}).get("notify")
    if token:
        client().rpush(DONE_KEY, token)


@signals.worker_ready.connect(weak=False)
def _ready(sender: Any = None, **_: Any) -> None:
    client().sadd(READY_KEY, str(getattr(sender, "hostname", "?")))
