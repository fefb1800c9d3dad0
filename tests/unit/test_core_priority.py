"""Unit tests for boundary_celery.core.priority."""

from __future__ import annotations

from typing import Any

import pytest

from boundary_celery.core import DEFAULT_PRIORITY, JobValidationError, Priority


def test_values_and_ranks() -> None:
    assert [p.value for p in Priority] == ["critical", "high", "normal", "low", "bulk"]
    assert [p.rank for p in Priority] == [0, 1, 2, 3, 4]
    assert DEFAULT_PRIORITY is Priority.NORMAL
    assert isinstance(Priority.HIGH, str) and Priority.HIGH == "high"


def test_ordering_by_urgency() -> None:
    shuffled = [Priority.LOW, Priority.CRITICAL, Priority.BULK, Priority.NORMAL, Priority.HIGH]
    expected = [Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW, Priority.BULK]
    assert sorted(shuffled) == expected
    assert sorted(shuffled, key=lambda p: p.rank) == expected
    assert Priority.ordered() == expected
    assert Priority.CRITICAL < Priority.BULK and Priority.LOW > Priority.HIGH
    assert Priority.NORMAL <= Priority.NORMAL and Priority.NORMAL >= Priority.NORMAL


@pytest.mark.parametrize("rank", range(5))
def test_from_rank(rank: int) -> None:
    assert Priority.from_rank(rank).rank == rank


@pytest.mark.parametrize("rank", [-1, 5, True])
def test_from_rank_rejects(rank: int) -> None:
    with pytest.raises(JobValidationError):
        Priority.from_rank(rank)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Priority.NORMAL),
        ("critical", Priority.CRITICAL),
        ("high", Priority.HIGH),
        ("normal", Priority.NORMAL),
        ("low", Priority.LOW),
        ("bulk", Priority.BULK),
        ("default", Priority.NORMAL),
        ("DEFAULT", Priority.NORMAL),
        ("  High  ", Priority.HIGH),
        ("CRITICAL", Priority.CRITICAL),
        (":low", Priority.LOW),
        (Priority.BULK, Priority.BULK),
    ],
)
def test_parse_names(value: Any, expected: Priority) -> None:
    assert Priority.parse(value) is expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, Priority.CRITICAL),
        (1, Priority.CRITICAL),
        (2, Priority.HIGH),
        (3, Priority.HIGH),
        (4, Priority.NORMAL),
        (5, Priority.NORMAL),
        (6, Priority.LOW),
        (7, Priority.LOW),
        (8, Priority.BULK),
        (9, Priority.BULK),
    ],
)
def test_celery_ints(n: int, expected: Priority) -> None:
    assert Priority.from_celery(n) is expected
    assert Priority.parse(n) is expected


@pytest.mark.parametrize("bad", ["urgent", "", "  ", "5", 10, -1, True, False, 1.0, [], object()])
def test_parse_rejects(bad: Any) -> None:
    with pytest.raises(JobValidationError) as exc:
        Priority.parse(bad)
    assert exc.value.field == "priority"
    assert exc.value.value is bad
    assert f"invalid priority: {bad!r}" in str(exc.value)
    assert "critical, high, normal, low, bulk" in exc.value.reason


@pytest.mark.parametrize("bad", [-1, 10, True])
def test_from_celery_rejects(bad: int) -> None:
    with pytest.raises(JobValidationError) as exc:
        Priority.from_celery(bad)
    assert exc.value.field == "priority"


@pytest.mark.parametrize("given", range(10))
def test_a_message_keeps_the_celery_integer_given_for_its_level(given: int) -> None:
    level = Priority.from_celery(given)
    assert level.celery_keeping(given) == given  # Celery reports back what it was given
    assert Priority.from_celery(level.celery_keeping(given)) is level


@pytest.mark.parametrize("given", [None, "high", 10, -1, True, 3.0])
def test_anything_but_an_integer_of_the_level_gives_the_levels_own(given: object) -> None:
    assert Priority.LOW.celery_keeping(given) == Priority.LOW.celery == 6
    assert Priority.LOW.celery_keeping(2) == 6  # 2 is high's: the level decides
