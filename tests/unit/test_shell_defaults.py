"""``shell.defaults``: the ``[retry]`` settings as a policy, policies in any accepted form,
and a job type's own max_retries."""

from __future__ import annotations

import os

import pytest
from celery import Celery

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.retry import BackoffStrategy, RetryPolicy
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell.defaults import as_policy, policy_from_settings, task_max_retries
from boundary_celery.shell.task import BoundaryTask, job_options


@pytest.fixture(autouse=True)
def _no_retry_env(monkeypatch):
    """Settings read BOUNDARY_* variables: keep the runner's environment out of these."""
    for name in list(os.environ):
        if name.startswith("BOUNDARY_RETRY"):
            monkeypatch.delenv(name)


def test_default_settings_give_the_default_policy():
    assert policy_from_settings(BoundarySettings()) == RetryPolicy()


@pytest.mark.parametrize("name", ["reference", "immediate-30s-5m-1h"])
def test_a_preset_gives_the_named_policy(name):
    policy = policy_from_settings(BoundarySettings(retry={"preset": name}))
    assert policy == RetryPolicy.preset("reference")
    assert policy.backoff_strategy is BackoffStrategy.SCHEDULE
    assert policy.schedule == (0, 30_000, 300_000, 3_600_000)


def test_a_preset_wins_over_explicit_values():
    settings = BoundarySettings(retry={"preset": "reference", "backoff_strategy": "linear",
                                       "initial_delay_ms": 7, "jitter": True})
    assert policy_from_settings(settings) == RetryPolicy.preset("reference")


def test_explicit_config_is_carried_field_by_field():
    settings = BoundarySettings(retry={"backoff_strategy": "linear", "initial_delay_ms": 250,
                                       "max_delay_ms": 9000, "jitter": True, "max_retries": 7})
    assert policy_from_settings(settings) == RetryPolicy(
        backoff_strategy=BackoffStrategy.LINEAR, initial_delay_ms=250, max_delay_ms=9000,
        jitter=True, schedule=(),
    )


def test_explicit_schedule_becomes_a_tuple():
    settings = BoundarySettings(retry={"backoff_strategy": "schedule", "schedule": [5, 50, 500]})
    policy = policy_from_settings(settings)
    assert policy.backoff_strategy is BackoffStrategy.SCHEDULE
    assert policy.schedule == (5, 50, 500)


def test_as_policy_none_and_policy_pass_through():
    assert as_policy(None) is None
    policy = RetryPolicy(initial_delay_ms=3)
    assert as_policy(policy) is policy


def test_as_policy_from_a_preset_name():
    assert as_policy("reference") == RetryPolicy.preset("reference")
    with pytest.raises(JobValidationError, match="preset"):
        as_policy("no-such-preset")


def test_as_policy_from_a_mapping_with_guide_keys():
    policy = as_policy({":backoff-strategy": "constant", "initial-delay-ms": 40,
                        "max_retries": 9})  # max_retries is not a policy field: ignored
    assert policy == RetryPolicy(backoff_strategy=BackoffStrategy.CONSTANT, initial_delay_ms=40)
    assert as_policy({}) == RetryPolicy()
    with pytest.raises(JobValidationError, match="bogus"):
        as_policy({"bogus": 1})


def _noop() -> None:
    return None


def _task(name: str, **options) -> BoundaryTask:
    app = Celery(f"defaults-{name}")
    return app.task(name=name, base=BoundaryTask, **job_options(name, **options))(_noop)


def test_task_max_retries_of_a_job_type_that_sets_it():
    assert task_max_retries(_task("t.five", max_retries=5), default=3) == 5


def test_task_max_retries_zero_is_not_the_default():
    assert task_max_retries(_task("t.zero", max_retries=0), default=3) == 0


def test_task_max_retries_falls_back_to_the_default():
    assert task_max_retries(_task("t.unset"), default=3) == 3
    assert task_max_retries(None, default=4) == 4  # job type unknown to this process
    assert task_max_retries(object(), default=2) == 2
