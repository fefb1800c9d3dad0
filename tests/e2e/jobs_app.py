"""The Celery app the end-to-end tests run in real worker subprocesses.

Handlers write what they did to Redis under the sandbox prefix (env), so the test
process can check execution order, attempts and timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery import Celery

import boundary_celery
from boundary_celery import (
    JobResult,
    UnknownTenantError,
    boundary_job,
    current_job,
    current_tenant,
)

KNOWN_TENANTS = {"acme", "globex"}


@contextmanager
def tenant_scope(tenant_id: str) -> Iterator[None]:
    """The tenant hook: refuses unknown tenants (a real one would set search_path)."""
    if tenant_id not in KNOWN_TENANTS:
        raise UnknownTenantError(f"unknown tenant {tenant_id!r}")
    yield


app = Celery("e2e")
jobs = boundary_celery.install(app, tenant_hook=tenant_scope)

PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                              decode_responses=True)


def note(kind: str, value: str) -> None:
    """Append ``value`` to the test's ``<prefix>:<kind>`` list."""
    _redis.rpush(f"{PREFIX}:{kind}", value)


@boundary_job(name="e2e.record")
def record(tag: str) -> str:
    note("order", tag)
    return tag


@boundary_job(name="e2e.flaky", max_retries=3,
              retry_policy={"initial_delay_ms": 500, "max_delay_ms": 5000})
def flaky(key: str, failures: int) -> dict[str, Any]:
    note(f"attempts:{key}", repr(time.time()))
    n = _redis.incr(f"{PREFIX}:count:{key}")
    if n <= failures:
        raise RuntimeError(f"transient failure {n}")
    return {"attempts": n}


@boundary_job(name="e2e.always_fail", max_retries=2,
              retry_policy={"initial_delay_ms": 200, "max_delay_ms": 1000})
def always_fail(key: str) -> None:
    note(f"attempts:{key}", repr(time.time()))
    raise ValueError(f"boom {key}")


@boundary_job(name="e2e.fail_shape", max_retries=0)
def fail_shape() -> JobResult:
    return JobResult.failure("Payment gateway unavailable", type="GatewayError")


@boundary_job(name="e2e.slow")
def slow(key: str, seconds: float) -> str:
    note(f"started:{key}", repr(time.time()))
    time.sleep(seconds)
    note(f"done:{key}", repr(time.time()))
    return key


@boundary_job(name="e2e.whoami")
def whoami() -> dict[str, Any]:
    ctx = current_job()
    assert ctx is not None
    return {"job_id": ctx.job_id, "tenant": current_tenant(), "attempt": ctx.attempt,
            "metadata": ctx.metadata}
