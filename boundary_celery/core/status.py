"""Job statuses, the transition table and the status sets that policy is built on."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from boundary_celery.core.errors import JobValidationError

__all__ = [
    "CANCEL_NOW_STATUSES",
    "CANCEL_REQUEST_STATUSES",
    "SKIP_DELIVERY_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "CancelAction",
    "JobStatus",
    "cancel_action",
    "cancel_rule",
    "valid_transition",
]


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
"""Allowed ``from -> to`` status moves; a status with no way out is terminal."""

TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    status for status, targets in TRANSITIONS.items() if not targets
)
"""Statuses the transition table never leaves: completed and cancelled.

Failed is *not* terminal: a dead-lettered job may be retried (failed -> pending).
"""

SKIP_DELIVERY_STATUSES: frozenset[JobStatus] = frozenset({_S.COMPLETED, _S.CANCELLED})
"""A delivery of a job whose record has one of these statuses must not run.

Failed is absent: a failed job can go back to pending (a retry from the DLQ), so its
status alone does not mean a delivery is obsolete. Used by
:func:`boundary_celery.core.delivery.delivery_verdict`.
"""


def valid_transition(from_status: JobStatus | str, to_status: JobStatus | str) -> bool:
    """True when the transition table allows ``from_status -> to_status``."""
    try:
        source, target = JobStatus.parse(from_status), JobStatus.parse(to_status)
    except JobValidationError:
        return False
    return target in TRANSITIONS[source]


CANCEL_NOW_STATUSES: frozenset[JobStatus] = frozenset({_S.PENDING, _S.SCHEDULED, _S.RETRYING})
"""Cancelling a job in one of these statuses makes it cancelled at once: no worker holds
it, so it never runs (a message still waiting in a queue is skipped when delivered)."""

CANCEL_REQUEST_STATUSES: frozenset[JobStatus] = frozenset({_S.RUNNING})
"""A job in one of these statuses is in a worker's hands: cancelling it only records the
request (its status is unchanged) for the handler, or the worker, to act on."""


class CancelAction(StrEnum):
    """What cancelling a job does (see :func:`cancel_action`)."""

    CANCEL = "cancel"
    """The job becomes cancelled now."""
    REQUEST = "request"
    """The job keeps running; the cancellation request is recorded."""
    NONE = "none"
    """Nothing: the job has finished (completed, failed or cancelled already)."""


def cancel_action(status: JobStatus | str, *, stopped: bool = False) -> CancelAction:
    """What cancelling a job in ``status`` does.

    ``stopped`` says the worker has already skipped or killed the delivery (e.g. Celery
    revoked it), so a running job is cancelled now rather than only asked to stop.
    """
    current = JobStatus.parse(status)
    if current in CANCEL_NOW_STATUSES or (stopped and current in CANCEL_REQUEST_STATUSES):
        return CancelAction.CANCEL
    if current in CANCEL_REQUEST_STATUSES:
        return CancelAction.REQUEST
    return CancelAction.NONE


def cancel_rule(*, stopped: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`cancel_action` as data for an adapter (e.g. a Lua script's ARGV): the status
    values cancelled now and those that only get the request, each sorted."""
    now = {s.value for s in JobStatus if cancel_action(s, stopped=stopped) is CancelAction.CANCEL}
    request = {s.value for s in JobStatus
               if cancel_action(s, stopped=stopped) is CancelAction.REQUEST}
    return tuple(sorted(now)), tuple(sorted(request))
