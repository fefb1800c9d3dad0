"""Dead-lettering of messages that cannot run: unreadable, invalid, or with no handler.

Nothing is discarded: each becomes a ``failed`` job in the DLQ whose error says why,
with the raw message kept (truncated) in its metadata for inspection.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from boundary_celery.adapters.redis_keys import Keys
from boundary_celery.adapters.redis_records import job_fields, to_ms
from boundary_celery.adapters.redis_store import dead_letter_with
from boundary_celery.core.job import Job, JobError, JobStatus, dead_letter_job
from boundary_celery.core.priority import Priority
from boundary_celery.shell.logfmt import event

log = logging.getLogger("boundary_celery.worker")

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


def dead_letter_poison(
    client: Any,
    keys: Keys,
    *,
    queue: str,
    raw: str,
    reason: str,
    dlq_max_size: int,
    dlq_max_age_days: int,
    job_id: str | None = None,
    job_type: str | None = None,
    error_type: str = "PoisonMessageError",
) -> Job:
    """Record an unreadable message as a failed job in the DLQ; returns that job."""
    now = datetime.now(UTC)
    job = poison_job(
        job_id=job_id, job_type=job_type, queue=queue, reason=reason,
        error_type=error_type, now=now, raw=raw,
    )
    dead_letter_with(
        client,
        keys,
        str(job.id),
        job.queue,
        to_ms(now),
        job_fields(job),
        duration_ms=None,
        max_size=dlq_max_size,
        max_age_ms=dlq_max_age_days * 24 * 3600 * 1000,
    )
    log.error(event("Poison message dead-lettered", job_id=str(job.id), queue=queue,
                    reason=reason))
    return job
