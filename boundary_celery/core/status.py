"""Job statuses, the transition table and the status sets that policy is built on."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from boundary_celery.core.errors import JobValidationError

__all__ = [
    "SKIP_DELIVERY_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "JobStatus",
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
