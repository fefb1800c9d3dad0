"""The Job model, its statuses and pure transitions. Time is passed in; nothing reads a clock."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, overload
from uuid import UUID

from pydantic import ConfigDict, Field, StrictInt, field_validator

from boundary_celery.core.errors import CoreModel, InvalidTransitionError, JobValidationError
from boundary_celery.core.priority import DEFAULT_PRIORITY, Priority
from boundary_celery.core.retry import RetryPolicy, calculate_retry_delay, normalise_key

__all__ = [
    "EPOCH",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Job",
    "JobError",
    "JobInput",
    "JobResult",
    "JobStatus",
    "calculate_retry_delay",
    "can_retry",
    "cancel_job",
    "complete_job",
    "create_job",
    "dead_letter_job",
    "fail_job",
    "interpret_handler_return",
    "prepare_retry",
    "schedule_job",
    "start_job",
    "valid_transition",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Timestamp used for required time fields when the caller passes no ``now``."""

_MAX_LEN = 200
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class JobStatus(StrEnum):
    """Lifecycle status of a job."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: JobStatus | str) -> JobStatus:
        """Parse a status name (case-insensitive, a leading ``:`` tolerated)."""
        if isinstance(value, JobStatus):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower().removeprefix(":"))
            except ValueError:
                pass
        raise JobValidationError("status", value, "unknown status")


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED})

_S = JobStatus
TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = MappingProxyType(
    {
        _S.PENDING: frozenset({_S.RUNNING, _S.SCHEDULED, _S.CANCELLED, _S.FAILED}),
        _S.SCHEDULED: frozenset({_S.PENDING, _S.RUNNING, _S.CANCELLED, _S.FAILED}),
        _S.RUNNING: frozenset({_S.COMPLETED, _S.RETRYING, _S.FAILED, _S.RUNNING, _S.CANCELLED}),
        _S.RETRYING: frozenset({_S.RUNNING, _S.PENDING, _S.SCHEDULED, _S.CANCELLED, _S.FAILED}),
        _S.FAILED: frozenset({_S.PENDING}),
        _S.COMPLETED: frozenset(),
        _S.CANCELLED: frozenset(),
    }
)


def valid_transition(from_status: JobStatus | str, to_status: JobStatus | str) -> bool:
    """True when the transition table allows ``from_status -> to_status``."""
    try:
        source, target = JobStatus.parse(from_status), JobStatus.parse(to_status)
    except JobValidationError:
        return False
    return target in TRANSITIONS[source]


def _check_json(field: str, value: Any) -> dict[str, Any]:
    """Require a JSON object with string keys (no NaN/inf, no sets, no arbitrary objects)."""
    if not isinstance(value, Mapping):
        raise JobValidationError(field, value, "expected a JSON object (dict)")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobValidationError(field, value, f"not JSON-serialisable: {exc}") from None
    bad_key = _first_non_str_key(value)
    if bad_key is not None:
        raise JobValidationError(field, value, f"keys must be strings, got {bad_key[0]!r}")
    return dict(value)


def _first_non_str_key(value: Any) -> tuple[object] | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return (key,)
            if (found := _first_non_str_key(item)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            if (found := _first_non_str_key(item)) is not None:
                return found
    return None


def _check_text(field: str, value: Any, *, strip_colon: bool = False) -> str:
    if not isinstance(value, str):
        raise JobValidationError(field, value, "expected a string")
    text = value.strip()
    if strip_colon:
        text = text.removeprefix(":").strip()
    if not text:
        raise JobValidationError(field, value, "must not be empty")
    if len(text) > _MAX_LEN:
        raise JobValidationError(field, value, f"longer than {_MAX_LEN} characters")
    return text


def _check_queue(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise JobValidationError("queue", value, "expected a non-empty string")
    if len(value) > _MAX_LEN or not _QUEUE_RE.match(value):
        raise JobValidationError(
            "queue", value, f"expected [A-Za-z0-9_.:-]+, at most {_MAX_LEN} characters"
        )
    return value


def _check_aware(field: str, value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise JobValidationError(field, value, "must be timezone-aware")
    return value


def _check_count(field: str, value: Any, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobValidationError(field, value, "expected an integer")
    if value < 0 or (upper is not None and value > upper):
        bound = f"0..{upper}" if upper is not None else ">= 0"
        raise JobValidationError(field, value, f"expected an integer {bound}")
    return value


class JobError(CoreModel):
    """What went wrong in an attempt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str
    type: str
    stacktrace: str | None = None


class JobInput(CoreModel):
    """A validated request to create a job. Build it with :meth:`JobInput.parse`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_type: str
    args: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = DEFAULT_PRIORITY
    queue: str = "default"
    max_retries: int = 3
    metadata: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str | None = None
    execute_at: datetime | None = None
    retry_policy: RetryPolicy | None = None

    @field_validator("job_type", mode="before")
    @classmethod
    def _v_job_type(cls, value: Any) -> str:
        return _check_text("job_type", value, strip_colon=True)

    @field_validator("args", "metadata", mode="before")
    @classmethod
    def _v_json(cls, value: Any, info: Any) -> dict[str, Any]:
        return _check_json(str(info.field_name), value)

    @field_validator("priority", mode="before")
    @classmethod
    def _v_priority(cls, value: Any) -> Priority:
        return Priority.parse(value)

    @field_validator("queue", mode="before")
    @classmethod
    def _v_queue(cls, value: Any) -> str:
        return _check_queue(value)

    @field_validator("max_retries", mode="before")
    @classmethod
    def _v_max_retries(cls, value: Any) -> int:
        return _check_count("max_retries", value, 25)

    @field_validator("tenant_id", mode="before")
    @classmethod
    def _v_tenant(cls, value: Any) -> str | None:
        return None if value is None else _check_text("tenant_id", value)

    @field_validator("execute_at")
    @classmethod
    def _v_execute_at(cls, value: datetime | None) -> datetime | None:
        result: datetime | None = _check_aware("execute_at", value)
        return result

    @field_validator("retry_policy", mode="before")
    @classmethod
    def _v_retry_policy(cls, value: Any) -> RetryPolicy | None:
        return None if value is None else RetryPolicy.from_config(value)

    @classmethod
    def parse(cls, obj: JobInput | Mapping[str, Any]) -> JobInput:
        """Validate a mapping with snake_case or kebab-case keys (or return a JobInput as is)."""
        if isinstance(obj, JobInput):
            return obj
        if not isinstance(obj, Mapping):
            raise JobValidationError("job_input", obj, "expected a mapping or JobInput")
        return cls(**_normalise(obj, cls.model_fields))


def _normalise(obj: Mapping[Any, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Map guide keys to field names; unknown or duplicated keys raise JobValidationError."""
    data: dict[str, Any] = {}
    for raw_key, value in obj.items():
        key = normalise_key(raw_key)
        if key not in fields:
            raise JobValidationError(str(raw_key), value, "unknown field")
        if key in data:
            raise JobValidationError(key, value, "given twice")
        data[key] = value
    return data


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
        return _check_json(str(info.field_name), value)

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
        return cls(**_normalise(data, cls.model_fields))


def _as_error(error: JobError | Mapping[str, Any]) -> JobError:
    if isinstance(error, JobError):
        return error
    if isinstance(error, Mapping):
        try:
            return JobError(**_normalise(error, JobError.model_fields))
        except JobValidationError as exc:
            raise JobValidationError("error", error, str(exc)) from None
    raise JobValidationError("error", error, "expected a JobError or {message, type, stacktrace}")


def _as_job(job: Job | Mapping[str, Any]) -> Job:
    """A Job as is, or a lenient Job from a partial mapping (defaults filled in)."""
    if isinstance(job, Job):
        return job
    if not isinstance(job, Mapping):
        raise JobValidationError("job", job, "expected a Job or a mapping")
    data = _normalise(job, Job.model_fields)
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
    _check_aware("execute_at", execute_at)
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


class _SuccessAccessor:
    """``JobResult.success(x)`` builds a result; ``result.success`` is its bool flag."""

    @overload
    def __get__(self, instance: None, owner: type[JobResult]) -> Callable[..., JobResult]: ...

    @overload
    def __get__(self, instance: JobResult, owner: type[JobResult]) -> bool: ...

    def __get__(
        self, instance: JobResult | None, owner: type[JobResult]
    ) -> Callable[..., JobResult] | bool:
        if instance is None:
            return owner._ok
        return instance._success


class JobResult:
    """The outcome of one handler call: ``JobResult.success(x)`` or ``JobResult.failure(...)``."""

    __slots__ = ("_success", "error", "result")

    success = _SuccessAccessor()

    def __init__(self, success: bool, result: Any = None, error: JobError | None = None) -> None:
        if not success and error is None:
            raise JobValidationError("error", None, "required when success is False")
        self._success = bool(success)
        self.result = result
        self.error = error

    @classmethod
    def _ok(cls, result: Any = None) -> JobResult:
        return cls(True, result)

    @classmethod
    def failure(
        cls, message: str, type: str = "JobError", stacktrace: str | None = None
    ) -> JobResult:
        """A failed outcome without raising."""
        return cls(False, None, JobError(message=message, type=type, stacktrace=stacktrace))

    def to_dict(self) -> dict[str, Any]:
        """``{"success", "result", "error"}`` with the error as a plain dict."""
        return {
            "success": self._success,
            "result": self.result,
            "error": None if self.error is None else self.error.model_dump(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobResult):
            return NotImplemented
        return (self._success, self.result, self.error) == (
            other._success,
            other.result,
            other.error,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._success:
            return f"JobResult.success({self.result!r})"
        return f"JobResult.failure({self.error!r})"


def _lenient_error(error: Any) -> JobError:
    if isinstance(error, JobError):
        return error
    if isinstance(error, Mapping):
        message = error.get("message", "handler reported failure")
        kind = error.get("type", "JobError")
        trace = error.get("stacktrace")
        return JobError(
            message=str(message),
            type=str(kind),
            stacktrace=None if trace is None else str(trace),
        )
    if error is None:
        return JobError(message="handler reported failure", type="JobError")
    return JobError(message=str(error), type="JobError")


def interpret_handler_return(value: Any) -> JobResult:
    """Turn what a handler returned into a JobResult (the guide's failure shape is a failure)."""
    if isinstance(value, JobResult):
        return value
    if isinstance(value, Mapping):
        flag = value.get("success", value.get("success?"))
        if flag is False:
            return JobResult(False, None, _lenient_error(value.get("error")))
        if flag is True and "result" in value:
            return JobResult(True, value["result"])
    return JobResult(True, value)
