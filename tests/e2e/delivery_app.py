"""The app of the delivery-path fault tests (tests/e2e/test_delivery_faults.py).

Handlers note each run in Redis under the sandbox prefix; ``stall`` pauses Redis's
writes for a few seconds (``CLIENT PAUSE ... WRITE``) right before the attempt fails,
so the retry publish meets a Redis that does not answer in time.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

import boundary_celery
from boundary_celery import boundary_job

app = Celery("delivery")
jobs = boundary_celery.install(app)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)

#: Longer than the shipped ``[redis] timeout_ms`` (2 s) and its one publish retry.
STALL_MS = 5000


def runs(key: str) -> int:
    """Note one run of ``key``; the number of runs so far."""
    return int(_redis.incr(f"{PREFIX}:runs:{key}"))


def stall() -> None:
    """Pause every client's writes for ``STALL_MS`` (reads still answer)."""
    _redis.execute_command("CLIENT", "PAUSE", STALL_MS, "WRITE")


@boundary_job(name="delivery.declared_stall", max_retries=3,
              retry_policy={"initial_delay_ms": 200, "max_delay_ms": 1000})
def declared_stall(key: str) -> str:
    if runs(key) == 1:
        stall()
        raise RuntimeError("first attempt fails while Redis stalls")
    return "done"


@app.task(bind=True, name="delivery.plain_stall", max_retries=3)
def plain_stall(self, key: str) -> str:
    if runs(key) == 1:
        stall()
        raise self.retry(countdown=0.2)
    return "done"


@app.task(bind=True, name="delivery.retry_bad_args", max_retries=3)
def retry_bad_args(self, key: str) -> str:
    runs(key)
    raise self.retry(kwargs={"key": key, "unexpected": 1}, countdown=0.2)


@boundary_job(name="delivery.needs_two", max_retries=3)
def needs_two(key: str, region: str) -> str:
    runs(key)
    return region


@app.task(name="delivery.slow")
def slow(key: str, seconds: float) -> str:
    runs(key)
    time.sleep(seconds)
    return key


@app.task(name="delivery.quick")
def quick(key: str) -> str:
    runs(key)
    return key


@app.task(name="delivery.reject")
def reject(key: str) -> None:
    from celery.exceptions import Reject

    runs(key)
    raise Reject("not for us", requeue=False)


@app.task(name="delivery.ignore")
def ignore(key: str) -> None:
    from celery.exceptions import Ignore

    runs(key)
    raise Ignore()
