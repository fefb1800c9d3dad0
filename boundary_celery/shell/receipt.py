"""Marking a job running on receipt: the ``begin`` call the worker's consumer runs in
the same MULTI/EXEC as kombu's unacked bookkeeping (see ``transport.QoS``); the
worker gives it to its consumer's connections in its ``Holdings``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boundary_celery.adapters.deliveries import BeginHook
from boundary_celery.adapters.redis_store import ScriptCall
from boundary_celery.shell import wire
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.execution import effective_max_retries
from boundary_celery.shell.task import BoundaryTask

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs


def begin_hook(jobs: Jobs, worker: str) -> BeginHook:
    """The hook returning the ``begin`` call for a message ``worker`` receives, or None
    when the message is not a job's (the pool child or the consumer handles it)."""
    tasks = jobs.app.tasks
    lease_s = float(jobs.settings.workers.lease_s)

    def call(message: Any) -> ScriptCall | None:
        headers = message.headers or {}
        raw = headers.get(wire.META)
        task = tasks.get(str(headers.get("task")))
        if raw is None or not isinstance(task, BoundaryTask):
            return None
        meta = wire.effective_meta(raw)
        return jobs.store.begin_call(str(headers["id"]), utcnow(), worker,
                                     int(headers.get("retries") or 0),
                                     effective_max_retries(task, meta),
                                     tag=str(getattr(message, "delivery_tag", "") or ""),
                                     lease_s=lease_s)

    return call
