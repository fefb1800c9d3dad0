"""The tasks of the example project: Celery's add/mul/xsum, a retrying task in the style of
Celery's Django example, one task converted to ``@boundary_job``, and a recorder."""

import os

import redis
from celery import shared_task

from boundary_celery import boundary_job

from .celery import app

_marks = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                              decode_responses=True)
PREFIX = os.environ.get("PROJ_MARK_PREFIX", "proj")


def mark(key: str, value: object) -> int:
    """Append ``value`` to a list the test reads (returns the list's new length)."""
    return int(_marks.rpush(f"{PREFIX}:{key}", str(value)))


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def record(tag):
    """Note the order tasks run in."""
    mark("order", tag)
    return tag


class FlakyError(Exception):
    """A transient failure."""


@shared_task(bind=True, autoretry_for=(FlakyError,), retry_backoff=1, retry_jitter=False,
             retry_kwargs={"max_retries": 3})
def flaky(self, key, succeed_on=0):
    """Fail with FlakyError until attempt ``succeed_on`` (0: never); notes each attempt."""
    import time

    attempt = mark(key, f"{time.time():.3f}")
    if attempt != succeed_on:
        raise FlakyError(f"attempt {attempt} failed")
    return attempt


@app.task(bind=True, default_retry_delay=1, max_retries=5)
def patient(self, key, ready_on):
    """Retries itself with self.retry(countdown=...) until attempt ``ready_on``."""
    attempt = mark(key, self.request.retries)
    if attempt < ready_on:
        raise self.retry(countdown=1)
    return attempt


@app.task(bind=True)
def retried_header(self, name):
    """Retries once; returns the custom header ``name`` its retry was delivered with."""
    if not self.request.retries:
        raise self.retry(countdown=0.1, max_retries=1)
    return (self.request.headers or {}).get(name)


@app.task(bind=True)
def retried_priority(self, seen=()):
    """Retries once; returns the priorities Celery delivered both attempts with."""
    seen = [*seen, self.request.delivery_info["priority"]]
    if not self.request.retries:
        raise self.retry(kwargs={"seen": seen}, countdown=0.1, max_retries=1)
    return seen


@boundary_job(priority="high")
def double(x):
    """Converted from ``@app.task``: the task name stays ``proj.tasks.double``."""
    return 2 * x


@boundary_job(queue="proj-emails", aliases=["proj.tasks.old_notify"])
def notify(to):
    """A job type on its own queue; messages under its old name still run it."""
    return f"sent to {to}"
