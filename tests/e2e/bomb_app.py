"""The Celery app of tests/e2e/test_decompression_bomb.py (shipped settings from the
environment): a task that takes a blob, and one that notes it ran."""

from __future__ import annotations

import os

import redis
from celery import Celery

import boundary_celery

app = Celery("e2e-bomb")
jobs = boundary_celery.install(app)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)


@app.task(name="bomb.swallow")
def swallow(blob: str) -> int:
    """Takes a (large) blob; only its size is kept."""
    return len(blob)


@app.task(name="bomb.echo")
def echo(tag: str) -> str:
    """Notes ``tag`` under the sandbox prefix."""
    _redis.rpush(f"{PREFIX}:echo", tag)
    return tag
