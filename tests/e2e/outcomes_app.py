"""Handlers whose attempts end outside the handler: time limits and a lost pool child.

Each writes to Redis under the sandbox prefix so the test can count its attempts.
"""

from __future__ import annotations

import os
import signal
import time

import redis
from celery import Celery

import boundary_celery
from boundary_celery import boundary_job

app = Celery("e2e-outcomes")
jobs = boundary_celery.install(app)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)


def note(kind: str) -> None:
    _redis.rpush(f"{PREFIX}:{kind}", repr(time.time()))


@boundary_job(name="outcomes.hard_limited", time_limit=1, max_retries=1,
              retry_policy={"initial_delay_ms": 200})
def hard_limited(key: str) -> None:
    """Runs past Celery's hard time limit on every attempt."""
    note(f"started:{key}")
    time.sleep(30)


@boundary_job(name="outcomes.timeout_ms", timeout_ms=800, max_retries=0)
def timeout_ms(key: str) -> None:
    """The guide's job timeout: Celery's hard time limit, in milliseconds."""
    note(f"started:{key}")
    time.sleep(30)


@app.task(name="outcomes.plain_limited", time_limit=1)
def plain_limited(key: str) -> None:
    """A plain Celery task over its hard limit: final, as in Celery."""
    note(f"started:{key}")
    time.sleep(30)


@boundary_job(name="outcomes.soft_limited", soft_time_limit=1, max_retries=0)
def soft_limited(key: str) -> None:
    note(f"started:{key}")
    time.sleep(30)


@app.task(name="outcomes.dies_once")
def dies_once(key: str) -> str:
    """The pool child dies (as if OOM-killed) on the first attempt only."""
    note(f"started:{key}")
    if _redis.incr(f"{PREFIX}:deaths:{key}") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@boundary_job(name="outcomes.tick")
def tick(i: int) -> int:
    """A short job that touches nothing but its own record."""
    time.sleep(0.01)
    return i
