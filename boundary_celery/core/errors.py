"""Core error types and the pydantic base model that turns validation failures into them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class JobValidationError(ValueError):
    """An input failed validation; names the offending field, its value and the reason."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(field, value, reason)
        self.field = field
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid {self.field}: {self.value!r} ({self.reason})"


class BrokerUnavailableError(Exception):
    """A publish failed because the broker refused it or did not answer in time; names
    the broker (password hidden), the per-call timeout in ms (None: unbounded) and why.

    A reply that timed out may hide a write that happened: the job may be stored and
    run. Publishing it again with the same job id (task_id) is safe: a job runs at most
    once at a time and never again once it completed."""

    def __init__(self, broker: str, timeout_ms: int | None, reason: str) -> None:
        super().__init__(broker, timeout_ms, reason)
        self.broker = broker
        self.timeout_ms = timeout_ms
        self.reason = reason

    def __str__(self) -> str:
        bound = "no timeout" if self.timeout_ms is None else f"timeout {self.timeout_ms} ms"
        return (f"broker {self.broker} unavailable ({bound} per Redis call): {self.reason}"
                " (the job may have been stored if a reply was lost: publishing it again"
                " with the same job id is safe)")


class NoHandlerError(Exception):
    """No handler is registered for a job type."""


class RetryNotPublishedError(Exception):
    """A retry the broker could not take (an outage past the budget, or arguments the
    handler does not accept): the attempt is final and the job is dead-lettered."""


class UnknownTenantError(Exception):
    """The job names a tenant the tenant hook does not know."""


class PoisonMessageError(Exception):
    """A message could not be decoded or validated."""


class JobCancelledError(Exception):
    """Raise it from a handler that stopped because ``cancel_requested()`` said so."""


class InvalidTransitionError(Exception):
    """A status transition that the transition table does not allow."""

    def __init__(self, from_status: object, to_status: object) -> None:
        super().__init__(from_status, to_status)
        self.from_status = str(getattr(from_status, "value", from_status))
        self.to_status = str(getattr(to_status, "value", to_status))

    def __str__(self) -> str:
        return f"invalid transition: {self.from_status} -> {self.to_status}"


_REASONS = {"extra_forbidden": "unknown field", "missing": "required"}


def from_validation_error(exc: ValidationError) -> JobValidationError:
    """Convert the first pydantic error into a JobValidationError (field = first loc element)."""
    err = exc.errors()[0]
    ctx = err.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, JobValidationError):
        return inner
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else exc.title
    kind = err.get("type", "")
    value = None if kind == "missing" else err.get("input")
    reason = _REASONS.get(kind, str(err.get("msg", kind)).removeprefix("Value error, "))
    return JobValidationError(field, value, reason)


class CoreModel(BaseModel):
    """Base model: unknown fields are rejected, failures raise JobValidationError."""

    model_config = ConfigDict(extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise from_validation_error(exc) from None


class NotReplicatedError(Exception):
    """An enqueue reached the master but fewer replicas than ``[redis] wait_replicas``
    acknowledged it within ``wait_timeout_ms``: the job exists, and a failover before a
    replica has it would lose it. Enqueueing again makes a second job."""

    def __init__(self, job_ids: list[str], wanted: int, acknowledged: int,
                 timeout_ms: int) -> None:
        super().__init__(job_ids, wanted, acknowledged, timeout_ms)
        self.job_ids = job_ids
        self.wanted = wanted
        self.acknowledged = acknowledged
        self.timeout_ms = timeout_ms

    def __str__(self) -> str:
        which = self.job_ids[0] if len(self.job_ids) == 1 else f"{len(self.job_ids)} jobs"
        return (f"{which} enqueued on the master, but {self.acknowledged} of "
                f"{self.wanted} replicas acknowledged within {self.timeout_ms} ms")
