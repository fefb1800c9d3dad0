"""Ports: the protocols of the guide's ``IJobQueue``, ``IJobStore``, ``IJobStats`` and
``IJobRegistry``.

``adapters.memory`` implements all four; ``adapters.redis_store.RedisJobStore`` implements
``JobStore`` and ``JobStats``, and ``shell.jobs.Jobs`` (which publishes through Celery)
``JobQueue`` and ``JobRegistry``. One contract test suite (``tests/contract``) holds both
sides to the same semantics. Adapters store and move jobs; every decision (transitions,
retries, delays) comes from ``boundary_celery.core``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from boundary_celery.core.job import Job
from boundary_celery.core.stats import JobStatsReport, QueueStats

__all__ = ["JobQueue", "JobRegistry", "JobStats", "JobStore"]


@runtime_checkable
class JobQueue(Protocol):
    """Named queues with five strict priority levels and a set of scheduled jobs."""

    def enqueue_job(self, queue_name: str, job: Job) -> UUID:
        """Make ``job`` wait in ``queue_name`` at its own priority; return its id."""
        ...

    def dequeue_job(self, queue_name: str) -> Job | None:
        """Take the next job: strict priority critical..bulk, FIFO within a level.

        The job is removed from the waiting jobs; its status is left unchanged (pending).
        ``None`` when nothing waits.
        """
        ...

    def schedule_job(self, queue_name: str, job: Job, execute_at: datetime) -> UUID:
        """Hold ``job`` until ``execute_at``, then it joins ``queue_name``; return its id."""
        ...

    def queue_size(self, queue_name: str) -> int:
        """Waiting jobs of ``queue_name`` over every level (scheduled jobs not counted)."""
        ...

    def queue_sizes_by_priority(self, queue_name: str) -> dict[str, int]:
        """Waiting jobs of ``queue_name`` per priority value, every level present."""
        ...

    def scheduled_count(self) -> int:
        """Jobs waiting for their ``execute_at``, all queues."""
        ...

    def process_scheduled_jobs(self, now: datetime) -> int:
        """Move the scheduled jobs due at ``now`` to their queues; return how many moved."""
        ...

    def list_queues(self) -> list[str]:
        """Names of the known queues, sorted."""
        ...


@runtime_checkable
class JobStore(Protocol):
    """Job records and the dead letter queue (DLQ)."""

    def save_job(self, job: Job) -> None:
        """Insert or replace the record of ``job``."""
        ...

    def find_job(self, job_id: UUID | str) -> Job | None:
        """The record of ``job_id``; ``None`` when unknown or not a UUID."""
        ...

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        """Dead-lettered jobs, most recent first, at most ``limit``."""
        ...

    def dead_letter(self, job: Job) -> None:
        """Save ``job`` (already settled as failed) and put it at the head of the DLQ."""
        ...

    def retry_job(self, job_id: UUID | str, reset_retries: bool = False) -> Job | None:
        """Re-queue a dead-lettered job now, at its own queue and priority.

        The job is prepared by ``core.prepare_retry``; ``None`` when the id is unknown
        or the job is not in the DLQ.
        """
        ...

    def purge_dlq(self, job_id: UUID | str | None = None) -> int:
        """Drop one DLQ entry (or all when ``job_id`` is None); return how many."""
        ...

    def cancel_job(self, job_id: UUID | str) -> Job | None:
        """Cancel a job as ``core.cancel_action`` decides; return the job after it.

        A pending, scheduled or retrying job becomes cancelled and is no longer scheduled
        (a copy still waiting in a queue is skipped when delivered); a running job only
        gets its cancellation requested (see :meth:`cancel_requested`); a completed,
        failed or cancelled job is unchanged. ``None`` when the id is unknown.
        """
        ...

    def cancel_requested(self, job_id: UUID | str) -> bool:
        """Whether cancelling ``job_id`` was requested (or it is cancelled already)."""
        ...

    def dlq_size(self) -> int:
        """Number of jobs in the DLQ."""
        ...


@runtime_checkable
class JobStats(Protocol):
    """Counters and gauges for monitoring (the guide's Job Statistics API)."""

    def job_stats(self) -> JobStatsReport:
        """Totals, workers, DLQ and scheduler figures, and one entry per queue."""
        ...

    def queue_stats(self, queue_name: str) -> QueueStats:
        """Size and counters of one queue (zeros for an unknown queue)."""
        ...

    def record_outcome(self, job: Job) -> None:
        """Count a terminal outcome (completed or failed) and its duration."""
        ...

    def record_retry(self, job: Job) -> None:
        """Count one automatic retry of ``job``."""
        ...


@runtime_checkable
class JobRegistry(Protocol):
    """Job type -> handler. Handlers receive the job's args as keyword arguments."""

    def register_handler(self, job_type: str, handler: Callable[..., Any]) -> None:
        """Register (or replace) the handler of ``job_type``."""
        ...

    def unregister_handler(self, job_type: str) -> None:
        """Forget the handler of ``job_type`` (no error when absent)."""
        ...

    def get_handler(self, job_type: str) -> Callable[..., Any] | None:
        """The handler of ``job_type``, or ``None``."""
        ...

    def list_job_types(self) -> list[str]:
        """Registered job types, sorted."""
        ...
