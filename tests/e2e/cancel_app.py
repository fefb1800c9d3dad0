"""The Celery app the cancellation tests run in real worker subprocesses.

Handlers write what they did to Redis under the sandbox prefix (env), so the test process
can prove a cancelled job never ran, or that a running one saw its cancellation.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

import boundary_celery
from boundary_celery import JobCancelledError, boundary_job, cancel_requested

app = Celery("cancel")
jobs = boundary_celery.install(app)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)


def note(kind: str, value: str) -> None:
    """Append ``value`` to the test's ``<prefix>:<kind>`` list."""
    _redis.rpush(f"{PREFIX}:{kind}", value)


@boundary_job(name="cancel.record")
def record(tag: str) -> str:
    note("ran", tag)
    return tag


@boundary_job(name="cancel.sleep")
def sleep(key: str, seconds: float) -> str:
    note(f"started:{key}", repr(time.time()))
    time.sleep(seconds)
    note(f"done:{key}", repr(time.time()))
    return key


@boundary_job(name="cancel.cooperative")
def cooperative(key: str, seconds: float) -> str:
    """Works in small steps, stopping as soon as its cancellation is requested."""
    note(f"started:{key}", repr(time.time()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel_requested():
            note(f"seen:{key}", repr(time.time()))
            raise JobCancelledError(f"{key} stopped: cancellation requested")
        time.sleep(0.05)
    note(f"done:{key}", repr(time.time()))
    return key
