"""Pure settlement of one attempt, shared by the in-memory worker and the Celery task."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from boundary_celery.core.job import (
    Job,
    JobError,
    JobResult,
    JobStatus,
    complete_job,
    fail_job,
)
from boundary_celery.core.retry import RetryPolicy, calculate_retry_delay

__all__ = ["Settlement", "error_from_exception", "settle"]


def error_from_exception(exc: BaseException) -> JobError:
    """A JobError carrying the exception's message, class name and formatted traceback."""
    return JobError(
        message=str(exc),
        type=type(exc).__name__,
        stacktrace="".join(traceback.format_exception(exc)),
    )


@dataclass(frozen=True)
class Settlement:
    """The settled job, the delay before its next attempt (if any) and whether it hit the DLQ."""

    job: Job
    retry_delay_ms: int | None
    dead_lettered: bool


def settle(
    job: Job,
    outcome: JobResult,
    now: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float] | None = None,
) -> Settlement:
    """Apply an attempt's outcome to the running job; the job's own retry_policy wins."""
    if outcome.success:
        return Settlement(complete_job(job, outcome.result, now), None, False)
    error = outcome.error or JobError(message="handler reported failure", type="JobError")
    failed = fail_job(job, error, now)
    if failed.status is JobStatus.RETRYING:
        delay = calculate_retry_delay(job.retry_count, job.retry_policy or policy, rand)
        return Settlement(failed, delay, False)
    return Settlement(failed, None, failed.status is JobStatus.FAILED)
