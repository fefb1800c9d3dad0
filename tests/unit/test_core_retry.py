"""Unit tests for boundary_celery.core.retry."""

from __future__ import annotations

from typing import Any

import pytest

from boundary_celery.core import (
    BackoffStrategy,
    JobValidationError,
    RetryPolicy,
    calculate_retry_delay,
)


@pytest.mark.parametrize(("k", "expected"), [(0, 1000), (1, 2000), (2, 4000), (3, 8000)])
def test_guide_exponential_with_empty_config(k: int, expected: int) -> None:
    assert calculate_retry_delay(k, {}) == expected
    assert calculate_retry_delay(k) == expected
    assert calculate_retry_delay(k, None) == expected


def test_exponential_cap() -> None:
    assert calculate_retry_delay(5, {}) == 32000
    assert calculate_retry_delay(6, {}) == 60000
    assert calculate_retry_delay(10, {}) == 60000
    assert calculate_retry_delay(10**6, {}) == 60000
    assert calculate_retry_delay(2**100, {"max-delay-ms": 5}) == 5


def test_linear_and_constant() -> None:
    linear = {"backoff-strategy": "linear", "initial-delay-ms": 500, "max-delay-ms": 1800}
    assert [calculate_retry_delay(k, linear) for k in range(5)] == [500, 1000, 1500, 1800, 1800]
    assert calculate_retry_delay(10**30, linear) == 1800
    constant = {"backoff_strategy": "constant", "initial_delay_ms": 700}
    assert [calculate_retry_delay(k, constant) for k in range(4)] == [700] * 4
    capped = {"backoff_strategy": "constant", "initial_delay_ms": 700, "max_delay_ms": 100}
    assert calculate_retry_delay(0, capped) == 100


def test_reference_preset() -> None:
    policy = RetryPolicy.preset("reference")
    assert policy.backoff_strategy is BackoffStrategy.SCHEDULE
    assert policy.schedule == (0, 30000, 300000, 3600000)
    assert policy.max_delay_ms == 3600000
    delays = [calculate_retry_delay(k, policy) for k in range(7)]
    assert delays == [0, 30000, 300000, 3600000, 3600000, 3600000, 3600000]
    assert RetryPolicy.preset("immediate-30s-5m-1h") == policy
    with pytest.raises(JobValidationError) as exc:
        RetryPolicy.preset("nope")
    assert exc.value.field == "retry_preset" and "'nope'" in str(exc.value)


def test_schedule_entries_not_capped() -> None:
    policy = {"backoff_strategy": "schedule", "schedule": [5, 99999], "max_delay_ms": 10}
    assert [calculate_retry_delay(k, policy) for k in range(3)] == [5, 99999, 99999]


def test_jitter_deterministic_and_bounded() -> None:
    policy = RetryPolicy(jitter=True, jitter_ratio=0.5)
    assert calculate_retry_delay(1, policy, rand=lambda: 0.0) == 2000
    assert calculate_retry_delay(1, policy, rand=lambda: 0.5) == 2500
    assert calculate_retry_delay(1, policy, rand=lambda: 0.5) == 2500
    assert calculate_retry_delay(1, policy, rand=lambda: 0.999) == 2999
    # capped again after jitter
    assert calculate_retry_delay(20, policy, rand=lambda: 0.9) == 60000
    default_ratio = RetryPolicy(jitter=True)
    assert calculate_retry_delay(0, default_ratio, rand=lambda: 0.5) == 1050


def test_jitter_guide_config_kebab() -> None:
    guide = {
        "max-retries": 3,
        "backoff-strategy": ":exponential",
        "initial-delay-ms": 1000,
        "max-delay-ms": 60000,
        "jitter": True,
    }
    policy = RetryPolicy.from_config(guide)
    assert policy == RetryPolicy(jitter=True)
    assert calculate_retry_delay(1, guide, rand=lambda: 0.99) == 2000 + int(2000 * 0.1 * 0.99)


def test_jitter_without_rand_is_an_error() -> None:
    with pytest.raises(ValueError, match="rand"):
        calculate_retry_delay(0, {"jitter": True})


@pytest.mark.parametrize("r", [1.0, -0.1, 2.0])
def test_jitter_rand_out_of_range(r: float) -> None:
    with pytest.raises(ValueError):
        calculate_retry_delay(0, {"jitter": True}, rand=lambda: r)


def test_no_jitter_ignores_rand() -> None:
    calls: list[int] = []

    def rand() -> float:
        calls.append(1)
        return 0.9

    assert calculate_retry_delay(2, {}, rand=rand) == 4000
    assert calls == []


def test_from_config_snake_and_kebab_equal() -> None:
    snake = {"backoff_strategy": "linear", "initial_delay_ms": 10, "max_delay_ms": 20}
    kebab = {"backoff-strategy": "LINEAR", "initial-delay-ms": 10, "max-delay-ms": 20}
    assert RetryPolicy.from_config(snake) == RetryPolicy.from_config(kebab)
    assert RetryPolicy.from_config(snake).backoff_strategy is BackoffStrategy.LINEAR
    assert RetryPolicy.from_config({}) == RetryPolicy() == RetryPolicy.from_config(None)
    policy = RetryPolicy(initial_delay_ms=5)
    assert RetryPolicy.from_config(policy) is policy


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.backoff_strategy is BackoffStrategy.EXPONENTIAL
    assert (policy.initial_delay_ms, policy.max_delay_ms) == (1000, 60000)
    assert policy.schedule == () and policy.jitter is False and policy.jitter_ratio == 0.1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"initial_delay_ms": -1}, "initial_delay_ms"),
        ({"initial-delay-ms": "1000"}, "initial_delay_ms"),
        ({"max_delay_ms": -5}, "max_delay_ms"),
        ({"max_delay_ms": 1.5}, "max_delay_ms"),
        ({"jitter_ratio": 1.5}, "jitter_ratio"),
        ({"jitter_ratio": -0.1}, "jitter_ratio"),
        ({"jitter_ratio": float("nan")}, "jitter_ratio"),
        ({"backoff_strategy": "fibonacci"}, "backoff_strategy"),
        ({"backoff_strategy": "schedule"}, "schedule"),
        ({"backoff_strategy": "schedule", "schedule": [0, -1]}, "schedule"),
        ({"schedule": ["a"]}, "schedule"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_policy(config: dict[str, Any], field: str) -> None:
    with pytest.raises(JobValidationError) as exc:
        RetryPolicy.from_config(config)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_invalid_policy_direct_construction() -> None:
    with pytest.raises(JobValidationError) as exc:
        RetryPolicy(initial_delay_ms=-1)
    assert exc.value.field == "initial_delay_ms" and exc.value.value == -1


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(Exception):  # noqa: B017 - pydantic frozen instance error
        policy.jitter = True  # type: ignore[misc]


@pytest.mark.parametrize("bad", [-1, True, "1", 1.0])
def test_bad_retry_count(bad: Any) -> None:
    with pytest.raises(JobValidationError) as exc:
        calculate_retry_delay(bad, {})
    assert exc.value.field == "retry_count"
