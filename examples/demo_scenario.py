"""The demo's scenario: which jobs it enqueues, how each must end, and the check.

Nine jobs of ``examples/app.py``, listed least urgent first: enqueued in this order while no
worker runs, their start order shows the priorities. A payment that always fails retries
with backoff into the DLQ; a report is scheduled :data:`SCHEDULE_AHEAD_S` seconds ahead.
:func:`problems` compares what the backend reports with what each :class:`Spec` expects.
Nothing here knows where the jobs run (see ``examples/demo_backends.py``) or prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The queues of examples/app.py (their logical names).
QUEUES = ["default", "emails", "media", "reports", "bulk-operations"]
SCHEDULE_AHEAD_S = 3.0
TERMINAL = ("completed", "failed", "cancelled")
PAYMENT_ERROR = "Payment gateway unavailable"


class DemoError(Exception):
    """The demo cannot go on or did not end as expected; the message says why."""


@dataclass(frozen=True)
class Spec:
    """One job of the scenario."""

    job_type: str
    args: dict[str, Any]
    priority: str | None = None  # None: the handler's default
    scheduled: bool = False
    expect: str = "completed"


#: Enqueued in this order, least urgent first, so that the start order shows the priorities.
SCENARIO = [
    Spec("export_data", {"user_id": "u-42", "format": "csv"}),                    # bulk
    Spec("generate_report", {"report_type": "weekly", "user_id": "u-42"}),        # low
    Spec("process_image", {"upload_id": "up-7", "sizes": ["64", "256"]}),         # normal
    Spec("process_payment", {"order_id": "ord-1001"}, expect="failed"),           # normal
    Spec("cleanup", {}, priority="low"),
    Spec("send_email", {"to": "ada@example.com", "subject": "Welcome"}),          # high
    Spec("process_image", {"upload_id": "up-8", "sizes": ["64"]}, priority="high"),
    Spec("send_email", {"to": "ops@example.com", "subject": "Password reset"},
         priority="critical"),
    Spec("generate_report", {"report_type": "daily", "user_id": "u-42"}, scheduled=True),
]


@dataclass
class Row:
    """What the tables show about one job."""

    job_id: str
    job_type: str
    queue: str
    priority: str
    status: str
    attempts: int = 0
    retry_count: int = 0
    max_retries: int = 0
    duration_ms: float | None = None
    started_at: datetime | None = None
    scheduled: bool = False
    error: str | None = None


def row_of(job: Any, attempts: int, queue: str, scheduled: bool) -> Row:
    """The :class:`Row` of a Job (``queue`` as displayed)."""
    error = f"{job.error.type}: {job.error.message}" if job.error is not None else None
    return Row(
        job_id=str(job.id), job_type=job.job_type, queue=queue, priority=job.priority.value,
        status=job.status.value, attempts=attempts, retry_count=job.retry_count,
        max_retries=job.max_retries, duration_ms=job.duration_ms, started_at=job.started_at,
        scheduled=scheduled, error=error,
    )


def finished(rows: Iterable[Row]) -> bool:
    """Every job is in a terminal status."""
    return all(r.status in TERMINAL for r in rows)


def problems(rows: list[Row], dead: Iterable[Any]) -> list[str]:
    """What differs from the scenario's expectations (``rows`` in :data:`SCENARIO` order,
    ``dead`` the DLQ's jobs); empty when every job ended as expected."""
    found = [f"{r.job_id[:8]} {r.job_type}: expected {spec.expect}, got {r.status}"
             for spec, r in zip(SCENARIO, rows, strict=True) if r.status != spec.expect]
    payment = next(r for spec, r in zip(SCENARIO, rows, strict=True)
                   if spec.job_type == "process_payment")
    if payment.job_id not in {str(j.id) for j in dead}:
        found.append("the failed payment is not in the DLQ")
    if not payment.error or PAYMENT_ERROR not in payment.error:
        found.append(f"the payment's error is {payment.error!r}")
    return found
