"""The Job model and its pure transitions. Time is passed in; nothing reads a clock.

Statuses and the transition table live in :mod:`boundary_celery.core.status`, field
validation and :class:`JobInput` in :mod:`boundary_celery.core.validation`, and handler
outcomes (:class:`JobResult`) in :mod:`boundary_celery.core.outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ConfigDict, Field, StrictInt, field_validator

from boundary_celery.core.errors import CoreModel, InvalidTransitionError, JobValidationError
from boundary_celery.core.priority import DEFAULT_PRIORITY, Priority
from boundary_celery.core.retry import RetryPolicy, calculate_retry_delay
from boundary_celery.core.status import JobStatus, valid_transition
from boundary_celery.core.validation import JobInput, check_aware, check_json, normalise

__all__ = [
    "EPOCH",
    "Job",
    "JobError",
    "calculate_retry_delay",
    "can_retry",
    "cancel_job",
    "complete_job",
    "create_job",
    "dead_letter_job",
    "fail_job",
    "prepare_retry",
    "schedule_job",
    "start_job",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Timestamp used for required time fields when the caller passes no ``now``."""


class JobError(CoreModel):
    """What went wrong in an attempt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str
    type: str
    stacktrace: str | None = None


class Job(CoreModel):
    """An immutable job record; transitions return updated copies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UUID
    job_type: str
    queue: str = "default"
    args: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = DEFAULT_PRIORITY
    status: JobStatus = JobStatus.PENDING
    retry_count: StrictInt = Field(default=0, ge=0)
    max_retries: StrictInt = Field(default=3, ge=0)
    tenant_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    execute_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    error: JobError | None = None
    duration_ms: float | None = None
    retry_policy: RetryPolicy | None = None

    @field_validator("priority", mode="before")
    @classmethod
    def _v_priority(cls, value: Any) -> Priority:
        return Priority.parse(value)

    @field_validator("status", mode="before")
    @classmethod
    def _v_status(cls, value: Any) -> JobStatus:
        return JobStatus.parse(value)

    @field_validator("args", "metadata", mode="before")
    @classmethod
    def _v_json(cls, value: Any, info: Any) -> dict[str, Any]:
        return check_json(str(info.field_name), value)

    @field_validator("retry_policy", mode="before")
    @classmethod
    def _v_retry_policy(cls, value: Any) -> RetryPolicy | None:
        return None if value is None else RetryPolicy.from_config(value)

    @field_validator("error", mode="before")
    @classmethod
    def _v_error(cls, value: Any) -> JobError | None:
        return None if value is None else _as_error(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: UUID and datetimes as ISO strings, enums as their values."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict` (kebab-case keys tolerated)."""
        if not isinstance(data, Mapping):
            raise JobValidationError("job", data, "expected a mapping")
        return cls(**normalise(data, cls.model_fields))


def _as_error(error: JobError | Mapping[str, Any]) -> JobError:
    if isinstance(error, JobError):
        return error
    if isinstance(error, Mapping):
        try:
            return JobError(**normalise(error, JobError.model_fields))
        except JobValidationError as exc:
            raise JobValidationError("error", error, str(exc)) from None
    raise JobValidationError("error", error, "expected a JobError or {message, type, stacktrace}")


def _as_job(job: Job | Mapping[str, Any]) -> Job:
    """A Job as is, or a lenient Job from a partial mapping (defaults filled in)."""
    if isinstance(job, Job):
        return job
    if not isinstance(job, Mapping):
        raise JobValidationError("job", job, "expected a Job or a mapping")
    data = normalise(job, Job.model_fields)
    if "id" not in data:
        raise JobValidationError("id", None, "required")
    data.setdefault("job_type", "unknown")
    return Job(**data)


def _as_uuid(job_id: UUID | str) -> UUID:
    if isinstance(job_id, UUID):
        return job_id
    if isinstance(job_id, str):
        try:
            return UUID(job_id)
        except ValueError:
            pass
    raise JobValidationError("id", job_id, "expected a UUID")


def _transition(job: Job, to: JobStatus, now: datetime | None, **update: Any) -> Job:
    if not valid_transition(job.status, to):
        raise InvalidTransitionError(job.status, to)
    changes: dict[str, Any] = {"status": to, **update}
    if now is not None:
        changes["updated_at"] = now
    return job.model_copy(update=changes)


def _duration_ms(started: datetime | None, ended: datetime | None) -> float | None:
    if started is None or ended is None:
        return None
    return (ended - started).total_seconds() * 1000.0


def create_job(
    job_input: JobInput | Mapping[str, Any], job_id: UUID | str, now: datetime | None = None
) -> Job:
    """A new job: pending (scheduled when the input has ``execute_at``), retry_count 0."""
    spec = JobInput.parse(job_input)
    return Job(
        id=_as_uuid(job_id),
        job_type=spec.job_type,
        queue=spec.queue,
        args=spec.args,
        priority=spec.priority,
        status=JobStatus.SCHEDULED if spec.execute_at is not None else JobStatus.PENDING,
        retry_count=0,
        max_retries=spec.max_retries,
        tenant_id=spec.tenant_id,
        metadata=spec.metadata,
        created_at=now,
        updated_at=now,
        execute_at=spec.execute_at,
        retry_policy=spec.retry_policy,
    )


def schedule_job(
    job_input: JobInput | Mapping[str, Any],
    job_id: UUID | str,
    execute_at: datetime,
    now: datetime | None = None,
) -> Job:
    """A new job that waits until ``execute_at`` (status scheduled)."""
    if not isinstance(execute_at, datetime):
        raise JobValidationError("execute_at", execute_at, "expected a datetime")
    check_aware("execute_at", execute_at)
    job = create_job(job_input, job_id, now)
    return job.model_copy(update={"status": JobStatus.SCHEDULED, "execute_at": execute_at})


def start_job(job: Job | Mapping[str, Any], now: datetime | None = None) -> Job:
    """Mark the job running (also valid for a redelivered running job)."""
    return _transition(_as_job(job), JobStatus.RUNNING, now, started_at=now, completed_at=None)


def complete_job(job: Job | Mapping[str, Any], result: Any, now: datetime | None = None) -> Job:
    """Mark the job completed with its result; duration from started_at when both are known."""
    current = _as_job(job)
    return _transition(
        current,
        JobStatus.COMPLETED,
        now,
        result=result,
        completed_at=now,
        duration_ms=_duration_ms(current.started_at, now),
        error=None,
    )


def fail_job(
    job: Job | Mapping[str, Any],
    error: JobError | Mapping[str, Any],
    now: datetime | None = None,
) -> Job:
    """Record a failure: retrying (retry_count + 1) while budget remains, else failed (DLQ)."""
    current = _as_job(job)
    err = _as_error(error)
    duration = _duration_ms(current.started_at, now)
    if can_retry(current):
        return _transition(
            current,
            JobStatus.RETRYING,
            now,
            retry_count=current.retry_count + 1,
            error=err,
            duration_ms=duration,
        )
    return _transition(
        current,
        JobStatus.FAILED,
        now,
        retry_count=current.retry_count + 1,
        error=err,
        completed_at=now if now is not None else EPOCH,
        duration_ms=duration,
    )


def dead_letter_job(
    job: Job | Mapping[str, Any],
    error: JobError | Mapping[str, Any],
    now: datetime | None = None,
) -> Job:
    """Move a job straight to failed (no handler, poison message); retry_count unchanged."""
    current = _as_job(job)
    return _transition(
        current,
        JobStatus.FAILED,
        now,
        error=_as_error(error),
        completed_at=now if now is not None else EPOCH,
    )


def cancel_job(job: Job | Mapping[str, Any], now: datetime | None = None) -> Job:
    """Mark the job cancelled (only where the transition table allows it)."""
    return _transition(_as_job(job), JobStatus.CANCELLED, now, completed_at=now)


def can_retry(job: Job | Mapping[str, Any]) -> bool:
    """True when another automatic attempt may follow a failure."""
    current = _as_job(job)
    return current.retry_count < current.max_retries


def prepare_retry(
    job: Job | Mapping[str, Any], now: datetime | None = None, reset_retries: bool = False
) -> Job:
    """Return a failed (or retrying) job to pending, keeping its error, queue and priority.

    A failed job keeps its retry_count and gets ``max_retries = retry_count`` so one more
    failure returns it to the DLQ; ``reset_retries`` sets retry_count to 0 instead.
    """
    current = _as_job(job)
    update: dict[str, Any] = {
        "completed_at": None,
        "result": None,
        "started_at": None,
        "duration_ms": None,
        "execute_at": None,
    }
    if reset_retries:
        update["retry_count"] = 0
    elif current.status is JobStatus.FAILED:
        update["max_retries"] = current.retry_count
    return _transition(current, JobStatus.PENDING, now, **update)
