"""The failed job recorded for a message that cannot run: unreadable, invalid, or with
no handler.

Nothing is discarded: the transport and the consumer dead-letter this job, whose error
says why, with the raw message kept (truncated) in its metadata for inspection.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from boundary_celery.core.job import Job, JobError, JobStatus, dead_letter_job
from boundary_celery.core.priority import Priority

RAW_LIMIT = 4000


def poison_job(
    *,
    job_id: str | None,
    job_type: str | None,
    queue: str,
    reason: str,
    error_type: str,
    now: datetime,
    args: dict[str, Any] | None = None,
    priority: Priority = Priority.NORMAL,
    raw: str | None = None,
    existing: Job | None = None,
) -> Job:
    """The failed job recorded for a message that cannot run (decided by the core)."""
    try:
        jid = uuid.UUID(str(job_id))
    except ValueError:
        jid = uuid.uuid4()
    if existing is not None and raw is not None:
        existing = existing.model_copy(
            update={"metadata": {**existing.metadata, "raw": raw[:RAW_LIMIT]}})
    base = existing or Job(
        id=jid,
        job_type=(job_type or "unknown")[:200],
        queue=queue,
        args=args or {},
        priority=priority,
        status=JobStatus.PENDING,
        max_retries=0,
        created_at=now,
        updated_at=now,
        metadata={"raw": raw[:RAW_LIMIT]} if raw is not None else {},
    )
    return dead_letter_job(base, JobError(message=reason, type=error_type), now)
