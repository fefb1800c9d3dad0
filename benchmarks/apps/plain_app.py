"""Plain Celery on kombu's own Redis transport: the baseline.

Same settings as boundary-celery's install(): JSON, acks_late, prefetch 1, task events,
priority steps 0, 2, 4, 6, 8, visibility timeout; the no-op job has the same signature.
"""

from __future__ import annotations

from celery import Celery

from benchmarks.apps.common import (
    NOOP,
    PRIORITY_STEPS,
    SEP,
    VISIBILITY_TIMEOUT_S,
    common_conf,
    redis_url,
)


def make_app(name: str = "bench_plain", *, current: bool = True) -> Celery:
    """The configured app (the harness publishes through a fresh, task-less one)."""
    app = Celery(name, broker=redis_url(), set_as_current=current)
    app.conf.update(
        **common_conf(),
        broker_transport_options={
            "priority_steps": PRIORITY_STEPS,
            "sep": SEP,
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
        },
    )
    return app


app = make_app()


@app.task(name=NOOP, ignore_result=True, acks_late=True, shared=False)
def noop(n: int = 0, notify: str = "") -> None:
    return None
