"""The five priority levels, their urgency order, aliases and the Celery integer mapping."""

from __future__ import annotations

from enum import StrEnum

from boundary_celery.core.errors import JobValidationError

_PRIORITY_REASON = (
    "expected one of critical, high, normal, low, bulk (or default) or a Celery integer 0-9"
)


class Priority(StrEnum):
    """Job priority; ordering (``<``, ``sorted``) is by urgency, critical first."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
    BULK = "bulk"

    @property
    def rank(self) -> int:
        """0 for critical ... 4 for bulk (0 = most urgent)."""
        return _RANKS[self]

    @property
    def celery(self) -> int:
        """The level's Celery-on-Redis integer: 0, 2, 4, 6, 8 (the first of its pair; also
        the kombu Redis priority step of the level's list)."""
        return _RANKS[self] * 2

    def celery_keeping(self, given: object) -> int:
        """The message priority of a job at this level: ``given`` when the publisher gave
        a Celery integer of this level's pair (7 for low stays 7, so Celery reports back
        the priority it was given), else :attr:`celery`. Either integer puts the message
        in the pair's list (kombu rounds down to its step) and reads back as this level."""
        if (isinstance(given, int) and not isinstance(given, bool) and 0 <= given <= 9
                and given // 2 == _RANKS[self]):
            return given
        return self.celery

    def __lt__(self, other: str) -> bool:
        if isinstance(other, Priority):
            return self.rank < other.rank
        return NotImplemented

    def __le__(self, other: str) -> bool:
        if isinstance(other, Priority):
            return self.rank <= other.rank
        return NotImplemented

    def __gt__(self, other: str) -> bool:
        if isinstance(other, Priority):
            return self.rank > other.rank
        return NotImplemented

    def __ge__(self, other: str) -> bool:
        if isinstance(other, Priority):
            return self.rank >= other.rank
        return NotImplemented

    @classmethod
    def ordered(cls) -> list[Priority]:
        """All levels, most urgent first."""
        return sorted(cls, key=lambda p: p.rank)

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        """The level with the given rank (0..4)."""
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= 4:
            raise JobValidationError("priority", rank, "expected a rank 0-4")
        return cls.ordered()[rank]

    @classmethod
    def from_celery(cls, n: int) -> Priority:
        """Map a Celery-on-Redis integer (0 = most urgent) to a level: pairs 0-1 ... 8-9."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 9:
            raise JobValidationError("priority", n, _PRIORITY_REASON)
        return cls.ordered()[n // 2]

    @classmethod
    def parse(cls, value: Priority | str | int | None) -> Priority:
        """Parse a level name (case-insensitive, ``default`` = normal), a Celery int or None."""
        if value is None:
            return DEFAULT_PRIORITY
        if isinstance(value, Priority):
            return value
        if isinstance(value, bool):
            raise JobValidationError("priority", value, _PRIORITY_REASON)
        if isinstance(value, int):
            return cls.from_celery(value)
        if isinstance(value, str):
            name = value.strip().lower().removeprefix(":")
            if name == "default":
                return DEFAULT_PRIORITY
            for member in cls:
                if member.value == name:
                    return member
        raise JobValidationError("priority", value, _PRIORITY_REASON)


_RANKS: dict[Priority, int] = {p: i for i, p in enumerate(Priority)}

DEFAULT_PRIORITY = Priority.NORMAL

#: One kombu Redis priority step per level (``Priority.celery``): Celery integers map in
#: pairs onto them, 0-1 critical ... 8-9 bulk, exactly as :meth:`Priority.from_celery`.
PRIORITY_STEPS: tuple[int, ...] = tuple(p.celery for p in Priority.ordered())
