"""A Celery result backend that reads results from the job store: no second copy.

``app.conf.result_backend = "boundary_celery.shell.results:JobStoreBackend"`` on an
installed app. The job record already holds each outcome (written by the worker before
Celery reports it), so storing is a no-op and ``AsyncResult.state``/``.get()`` read the
record. Unlike Celery's backends, an id the store has never seen is ``UNKNOWN``, not
``PENDING`` (celery#4450); ``.get()`` waits for it as for a pending job (a chain's later
tasks are published only when their turn comes) and, if it is still unknown at the
timeout, raises :class:`UnknownJobError` rather than a timeout.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import BaseBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError

from boundary_celery.core.job import Job
from boundary_celery.core.status import JobStatus
from boundary_celery.shell.installed import jobs_of

#: The state of an id the job store does not know.
UNKNOWN = "UNKNOWN"

_STATES = {
    JobStatus.PENDING: states.PENDING,
    JobStatus.SCHEDULED: states.PENDING,
    JobStatus.RUNNING: states.STARTED,
    JobStatus.RETRYING: states.RETRY,
    JobStatus.COMPLETED: states.SUCCESS,
    JobStatus.FAILED: states.FAILURE,
    JobStatus.CANCELLED: states.REVOKED,
}


class UnknownJobError(CeleryTimeoutError):
    """``.get()`` timed out on an id the job store does not know (or whose record
    expired); a Celery ``TimeoutError``, so existing handlers still catch it."""


class JobStoreBackend(BaseBackend):
    """Results and states from the job records (see the module docstring)."""

    supports_native_join = False  # chords are joined by Celery's chord_unlock task

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        return result  # the worker wrote the outcome on the job record already

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        job = jobs_of(self.app).find_job(task_id)  # type: ignore[attr-defined]
        if job is None:
            return {"task_id": task_id, "status": UNKNOWN, "result": None, "traceback": None}
        return meta_of(job)

    def wait_for(self, task_id: str, timeout: float | None = None, interval: float = 0.5,
                 no_ack: bool = True, on_interval: Any = None) -> Any:
        try:
            return super().wait_for(task_id, timeout=timeout, interval=interval,
                                    no_ack=no_ack, on_interval=on_interval)
        except CeleryTimeoutError:
            if self.get_task_meta(task_id)["status"] == UNKNOWN:
                raise UnknownJobError(f"job {task_id} is unknown to the job store "
                                      f"(never published, or its record expired)") from None
            raise

    def _forget(self, task_id: str) -> None:
        return None  # records expire by the store's TTL; the DLQ keeps failures

    def _save_group(self, group_id: str, result: Any) -> Any:
        raise NotImplementedError("JobStoreBackend keeps no group results: use .get() "
                                  "on the group, or a Redis result backend for GroupResult.save")

    def _restore_group(self, group_id: str) -> Any:
        return None


def meta_of(job: Job) -> dict[str, Any]:
    """Celery's task meta for a job record."""
    state = _STATES[job.status]
    result: Any = job.result
    traceback = None
    if state == states.FAILURE and job.error is not None:
        result = {"exc_type": job.error.type, "exc_message": [job.error.message],
                  "exc_module": None}
        traceback = job.error.stacktrace
    elif state != states.SUCCESS:
        result = None
    return {"task_id": str(job.id), "status": state, "result": result,
            "traceback": traceback, "children": [],
            "date_done": job.completed_at.isoformat() if job.completed_at else None}
