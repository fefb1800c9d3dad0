"""Outcomes of one attempt: a handler's return value becomes a :class:`JobResult`, and
:func:`settle` applies it to the running job (complete, retry with a delay, or dead-letter).

Shared by the in-memory worker and the Celery task; which failures are worth retrying is
decided here too (:func:`is_retryable`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

from boundary_celery.core.errors import (
    JobValidationError,
    RetryNotPublishedError,
    UnknownTenantError,
)
from boundary_celery.core.job import Job, JobError, complete_job, fail_job
from boundary_celery.core.retry import RetryPolicy, calculate_retry_delay
from boundary_celery.core.status import JobStatus

__all__ = [
    "NON_RETRYABLE_ERRORS",
    "JobResult",
    "Settlement",
    "error_from_exception",
    "interpret_handler_return",
    "is_retryable",
    "settle",
]

NON_RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (UnknownTenantError,
                                                         RetryNotPublishedError)
"""Exceptions that never get better by retrying: an attempt that raised one is dead-lettered
at once, whatever retry budget remains."""


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


def error_from_exception(exc: BaseException) -> JobError:
    """A JobError carrying the exception's message, class name and formatted traceback."""
    return JobError(
        message=str(exc),
        type=type(exc).__name__,
        stacktrace="".join(traceback.format_exception(exc)),
    )


def is_retryable(exc: BaseException | type[BaseException] | str) -> bool:
    """False when a failure of this kind must not be retried (see ``NON_RETRYABLE_ERRORS``).

    Takes the exception, its class, or its class name (as in ``JobError.type``); a name
    matches only the listed classes themselves, not their subclasses.
    """
    if isinstance(exc, str):
        return exc not in {cls.__name__ for cls in NON_RETRYABLE_ERRORS}
    kind = exc if isinstance(exc, type) else type(exc)
    return not issubclass(kind, NON_RETRYABLE_ERRORS)


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
    *,
    exc: BaseException | type[BaseException] | str | None = None,
    automatic_retries: bool = True,
) -> Settlement:
    """Apply an attempt's outcome to the running job; the job's own retry_policy wins.

    ``exc`` is what the attempt raised, if anything. A failure whose ``exc`` is not
    :func:`is_retryable` spends the retry budget first (``max_retries = retry_count``), so
    the job is dead-lettered now instead of retried. Without ``automatic_retries`` (a plain
    Celery task: it retries only through its own retry API) every failure is final.
    """
    if outcome.success:
        return Settlement(complete_job(job, outcome.result, now), None, False)
    if not automatic_retries or (exc is not None and not is_retryable(exc)):
        job = job.model_copy(update={"max_retries": job.retry_count})
    error = outcome.error or JobError(message="handler reported failure", type="JobError")
    failed = fail_job(job, error, now)
    if failed.status is JobStatus.RETRYING:
        delay = calculate_retry_delay(job.retry_count, job.retry_policy or policy, rand)
        return Settlement(failed, delay, False)
    return Settlement(failed, None, failed.status is JobStatus.FAILED)
