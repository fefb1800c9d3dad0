"""What a job gets when neither its enqueue call nor its job type says: the ``[retry]``
settings as a retry policy and max_retries, and retry-policy values in any accepted form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boundary_celery.core.retry import RetryPolicy
from boundary_celery.settings import BoundarySettings


def policy_from_settings(settings: BoundarySettings) -> RetryPolicy:
    """The default retry policy configured in ``[retry]``."""
    cfg = settings.retry
    if cfg.preset:
        return RetryPolicy.preset(cfg.preset)
    return RetryPolicy.from_config(
        {
            "backoff_strategy": cfg.backoff_strategy,
            "initial_delay_ms": cfg.initial_delay_ms,
            "max_delay_ms": cfg.max_delay_ms,
            "jitter": cfg.jitter,
            "schedule": tuple(cfg.schedule),
        }
    )


def as_policy(value: RetryPolicy | Mapping[str, Any] | str | None) -> RetryPolicy | None:
    """A retry policy from a policy, a preset name or a config mapping (None stays None)."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    if isinstance(value, str):
        return RetryPolicy.preset(value)
    return RetryPolicy.from_config(value)


#: The most retries a job record can show (a Celery task may allow more, or unlimited).
MAX_RECORDED_RETRIES = 25


def task_max_retries(task: Any, default: int) -> int:
    """The job type's own ``max_retries`` (``boundary_max_retries``); for a plain Celery
    task Celery's ``max_retries`` (unlimited shows as 25); else ``default``."""
    value = getattr(task, "boundary_max_retries", None)
    if value is not None:
        return int(value)
    if task is not None and not getattr(task, "boundary_declared", True):
        celery_value = getattr(task, "max_retries", None)
        return MAX_RECORDED_RETRIES if celery_value is None else min(
            int(celery_value), MAX_RECORDED_RETRIES)
    return default
