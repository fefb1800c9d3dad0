"""Whether one delivery of a job may run, judged from the job's stored record.

Celery delivers at least once, so a message can arrive after its job was finished or
cancelled, or after a later attempt already began. Adapters (e.g. the Redis ``begin``
script) apply this verdict; the rule itself lives here.
"""

from __future__ import annotations

from boundary_celery.core.status import SKIP_DELIVERY_STATUSES, JobStatus

__all__ = [
    "DELIVERY_BUSY",
    "DELIVERY_OK",
    "DELIVERY_STALE",
    "SKIP_DELIVERY_STATUSES",
    "SKIP_DELIVERY_STATUS_VALUES",
    "delivery_verdict",
]

DELIVERY_OK = "ok"
"""Verdict: the delivery runs."""

DELIVERY_STALE = "stale"
"""Verdict: the record's retry_count is past the message's (a duplicate of an older attempt)."""

DELIVERY_BUSY = "busy"
"""Verdict: another delivery of the same attempt runs under a live lease (a duplicate
message). Skipping it loses nothing: if that delivery's worker dies, its own message is
delivered again when its lease lapses."""

SKIP_DELIVERY_STATUS_VALUES: tuple[str, ...] = tuple(
    sorted(status.value for status in SKIP_DELIVERY_STATUSES)
)
"""``SKIP_DELIVERY_STATUSES`` as sorted plain strings, e.g. to pass to a Lua script as ARGV."""


def delivery_verdict(
    stored_status: JobStatus | str | None,
    stored_retry_count: int | None,
    message_retry_count: int,
    *,
    held_elsewhere: bool = False,
) -> str:
    """``"ok"`` when the delivery may run, else why it must be skipped.

    * ``"completed"`` / ``"cancelled"``: the stored status is in ``SKIP_DELIVERY_STATUSES``
      (the status value itself is the reason);
    * ``"stale"``: the stored retry_count is greater than the one the message carries;
    * ``"busy"``: the record is ``running`` this very attempt for another delivery whose
      lease is live (``held_elsewhere``): two copies of one job never run at once.

    The status check comes first. ``None`` means the record (or that field) is absent, which
    never skips by itself. A string status must be the exact stored value (``"completed"``,
    not ``"COMPLETED"``), as the stored record holds it. Mirrors
    ``boundary_celery/adapters/lua/begin.lua``, whose extra ``"missing"`` verdict (no record
    and nothing to create one from) is the adapter's concern, not policy.
    """
    if stored_status is not None and stored_status in SKIP_DELIVERY_STATUSES:
        return JobStatus(stored_status).value
    if stored_retry_count is not None and stored_retry_count > message_retry_count:
        return DELIVERY_STALE
    if (held_elsewhere and stored_status == JobStatus.RUNNING
            and stored_retry_count == message_retry_count):
        return DELIVERY_BUSY
    return DELIVERY_OK
