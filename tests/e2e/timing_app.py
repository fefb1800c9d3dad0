"""The Celery app of the timing tests (``tests/e2e/test_timing.py``), shipped defaults only.

No retry policy, no scheduler interval: the job types below use the default retry policy
(exponential, initial 1 s) and the worker's embedded scheduler runs with its default
settings. Each handler first notes ``time.time()`` in the sandbox's Redis
(``<prefix>:starts:<key>``), so the test process sees when each attempt started.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

import boundary_celery
from boundary_celery import boundary_job

app = Celery("e2e_timing")
jobs = boundary_celery.install(app)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)


def note_start(key: str) -> None:
    """Append the current time to ``<prefix>:starts:<key>``."""
    _redis.rpush(f"{PREFIX}:starts:{key}", repr(time.time()))


@boundary_job(name="timing.fails")
def fails(key: str, failures: int = 2) -> int:
    """Fails its first ``failures`` attempts, then succeeds (default retry policy)."""
    note_start(key)
    attempt = int(_redis.incr(f"{PREFIX}:count:{key}"))
    if attempt <= failures:
        raise RuntimeError(f"transient failure {attempt} of {key}")
    return attempt


@boundary_job(name="timing.starts")
def starts(key: str) -> None:
    """Only notes when it started."""
    note_start(key)
