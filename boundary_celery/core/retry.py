"""Retry policies and the pure retry-delay calculation (randomness is passed in)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from boundary_celery.core.errors import CoreModel, JobValidationError

_MAX_EXPONENT = 62


class BackoffStrategy(StrEnum):
    """How the delay grows with the retry count."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    CONSTANT = "constant"
    SCHEDULE = "schedule"


_POLICY_FIELDS = frozenset(
    {"backoff_strategy", "initial_delay_ms", "max_delay_ms", "schedule", "jitter", "jitter_ratio"}
)
_IGNORED_KEYS = frozenset({"max_retries"})

_REFERENCE_SCHEDULE = (0, 30_000, 300_000, 3_600_000)


class RetryPolicy(CoreModel):
    """Immutable retry policy; invalid values raise JobValidationError naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backoff_strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    initial_delay_ms: StrictInt = Field(default=1000, ge=0)
    max_delay_ms: StrictInt = Field(default=60_000, ge=0)
    schedule: tuple[StrictInt, ...] = Field(default=(), validate_default=True)
    jitter: bool = False
    jitter_ratio: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("backoff_strategy", mode="before")
    @classmethod
    def _parse_strategy(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, BackoffStrategy):
            name = value.strip().lower().removeprefix(":")
            try:
                return BackoffStrategy(name)
            except ValueError:
                raise JobValidationError(
                    "backoff_strategy", value, "expected exponential, linear, constant or schedule"
                ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        for entry in value:
            if entry < 0:
                raise JobValidationError("schedule", entry, "delays must be >= 0")
        if info.data.get("backoff_strategy") is BackoffStrategy.SCHEDULE and not value:
            raise JobValidationError(
                "schedule", value, "required non-empty when backoff_strategy is schedule"
            )
        return value

    @classmethod
    def from_config(cls, config: RetryPolicy | Mapping[str, Any] | None) -> RetryPolicy:
        """Build from the guide's retry config (snake- or kebab-case keys); None/{} = defaults."""
        if config is None:
            return cls()
        if isinstance(config, RetryPolicy):
            return config
        if not isinstance(config, Mapping):
            raise JobValidationError("retry_policy", config, "expected a mapping or RetryPolicy")
        data: dict[str, Any] = {}
        for raw_key, value in config.items():
            key = normalise_key(raw_key)
            if key in _IGNORED_KEYS:
                continue
            if key not in _POLICY_FIELDS:
                raise JobValidationError(str(raw_key), value, "unknown field")
            data[key] = value
        return cls(**data)

    @classmethod
    def preset(cls, name: str) -> RetryPolicy:
        """Named policies: ``reference`` (alias ``immediate-30s-5m-1h``) = 0, 30 s, 5 min, 1 h."""
        if name in ("reference", "immediate-30s-5m-1h"):
            return cls(
                backoff_strategy=BackoffStrategy.SCHEDULE,
                schedule=_REFERENCE_SCHEDULE,
                max_delay_ms=3_600_000,
            )
        raise JobValidationError("retry_preset", name, "unknown preset; expected reference")


def normalise_key(key: object) -> str:
    """Map a guide key (``:job-type``, ``job-type``) to its snake_case field name."""
    if not isinstance(key, str):
        raise JobValidationError(repr(key), key, "keys must be strings")
    return key.strip().removeprefix(":").replace("-", "_")


def calculate_retry_delay(
    retry_count: int,
    config: RetryPolicy | Mapping[str, Any] | None = None,
    rand: Callable[[], float] | None = None,
) -> int:
    """Milliseconds to wait before retry ``retry_count + 1`` under the given policy."""
    if isinstance(retry_count, bool) or not isinstance(retry_count, int) or retry_count < 0:
        raise JobValidationError("retry_count", retry_count, "expected an integer >= 0")
    policy = RetryPolicy.from_config(config)
    k = retry_count
    strategy = policy.backoff_strategy
    capped = strategy is not BackoffStrategy.SCHEDULE
    if strategy is BackoffStrategy.EXPONENTIAL:
        delay = policy.initial_delay_ms * 2 ** min(k, _MAX_EXPONENT)
    elif strategy is BackoffStrategy.LINEAR:
        delay = policy.initial_delay_ms * (min(k, 2**62) + 1)
    elif strategy is BackoffStrategy.CONSTANT:
        delay = policy.initial_delay_ms
    else:
        delay = policy.schedule[min(k, len(policy.schedule) - 1)]
    if capped:
        delay = min(delay, policy.max_delay_ms)
    if policy.jitter:
        if rand is None:
            raise ValueError("jitter is enabled but no random source (rand) was passed")
        r = rand()
        if not 0.0 <= r < 1.0:
            raise ValueError(f"rand() must return a float in [0, 1), got {r!r}")
        delay += int(delay * policy.jitter_ratio * r)
        if capped:
            delay = min(delay, policy.max_delay_ms)
    return int(delay)
