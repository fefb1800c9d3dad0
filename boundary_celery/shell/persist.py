"""Writing an outcome through a Redis blip: a completion, retry or dead-letter that
could not be written is retried (with backoff, for a bounded time) before the message
is acknowledged, so a restart of Redis never acks a job whose outcome was lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from kombu.exceptions import OperationalError

from boundary_celery.shell.logfmt import event

log = logging.getLogger("boundary_celery.worker")

T = TypeVar("T")

#: Errors worth waiting out: the connection, not the command.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
             redis.exceptions.BusyLoadingError, OperationalError, ConnectionError,
             TimeoutError)

#: How long an outcome write keeps trying (a Redis restart with AOF takes seconds).
BUDGET_S = 60.0


def persisting(write: Callable[[], T], *, what: str, budget_s: float = BUDGET_S,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """``write()``, retried on a transient Redis error until ``budget_s`` has passed
    (waits 0.1 s, doubling to 2 s); the last error is raised after that."""
    deadline = time.monotonic() + budget_s
    wait = 0.1
    while True:
        try:
            return write()
        except TRANSIENT as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning(event("Redis unavailable; retrying", action=what, error=repr(exc),
                              retry_in_s=wait))
            sleep(wait)
            wait = min(wait * 2, 2.0)
