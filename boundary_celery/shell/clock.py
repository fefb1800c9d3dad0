"""The shell's clock: the core never reads one, the shell passes it ``utcnow()``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (the unit message headers carry)."""
    return int(moment.timestamp() * 1000)
