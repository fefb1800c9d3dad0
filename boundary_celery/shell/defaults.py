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


def task_max_retries(task: Any, default: int) -> int:
    """The job type's own ``max_retries`` (``boundary_max_retries``), else ``default``."""
    value = getattr(task, "boundary_max_retries", None)
    return default if value is None else int(value)
