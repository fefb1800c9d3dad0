"""boundary-celery: ``install(app)`` and a ``@boundary_job`` no-op handler."""

from __future__ import annotations

from typing import Any

from celery import Celery

import boundary_celery
from benchmarks.apps.common import NOOP, common_conf, events_conf, redis_url
from boundary_celery import boundary_job
from boundary_celery.settings import BoundarySettings

app = Celery("bench_boundary", broker=redis_url())
app.conf.update(**common_conf())
_overrides: dict[str, Any] = {
    "redis": {"url": redis_url()},
    "store": {"key_prefix": "bench"},
    "workers": {"prefetch_multiplier": 1},
}
settings = BoundarySettings(**_overrides)
jobs = boundary_celery.install(app, settings)
app.conf.update(**events_conf())  # install() turns events on; --no-events turns them off


@boundary_job(name=NOOP)
def noop(n: int = 0, notify: str = "") -> None:
    return None
