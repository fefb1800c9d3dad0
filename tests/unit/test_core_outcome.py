"""Unit tests for boundary_celery.core.outcome and core.stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from boundary_celery.core import (
    Job,
    JobError,
    JobResult,
    JobStatsReport,
    JobStatus,
    QueueStats,
    RetryPolicy,
    Settlement,
    average_duration,
    create_job,
    error_from_exception,
    settle,
    start_job,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(milliseconds=250)


def _running(retry_count: int = 0, **overrides: Any) -> Job:
    job = create_job({"job_type": "x", **overrides}, uuid4(), now=T0)
    job = job.model_copy(update={"retry_count": retry_count})
    return start_job(job, now=T0)


def test_error_from_exception() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        err = error_from_exception(exc)
    assert err.type == "KeyError"
    assert err.message == str(KeyError("missing"))
    assert err.stacktrace is not None
    assert "Traceback" in err.stacktrace and "test_error_from_exception" in err.stacktrace
    assert err.stacktrace.rstrip().endswith("KeyError: 'missing'")


def test_error_from_unraised_exception() -> None:
    err = error_from_exception(ValueError("bad"))
    assert (err.message, err.type) == ("bad", "ValueError")
    assert err.stacktrace == "ValueError: bad\n"


def test_settle_success() -> None:
    s = settle(_running(), JobResult.success({"n": 1}), T1, RetryPolicy())
    assert isinstance(s, Settlement)
    assert s.job.status is JobStatus.COMPLETED and s.job.result == {"n": 1}
    assert s.job.completed_at == T1 and s.job.duration_ms == pytest.approx(250.0)
    assert s.retry_delay_ms is None and s.dead_lettered is False


@pytest.mark.parametrize(("retry_count", "delay"), [(0, 1000), (1, 2000), (2, 4000)])
def test_settle_retrying_uses_policy(retry_count: int, delay: int) -> None:
    s = settle(_running(retry_count), JobResult.failure("t", "NetworkError"), T1, RetryPolicy())
    assert s.job.status is JobStatus.RETRYING
    assert s.job.retry_count == retry_count + 1
    assert s.job.error == JobError(message="t", type="NetworkError")
    assert s.retry_delay_ms == delay and s.dead_lettered is False


def test_settle_jobs_own_policy_wins() -> None:
    job = _running(1, retry_policy=RetryPolicy.preset("reference"))
    s = settle(job, JobResult.failure("t"), T1, RetryPolicy())
    assert s.retry_delay_ms == 30000
    s2 = settle(_running(1), JobResult.failure("t"), T1, RetryPolicy.preset("reference"))
    assert s2.retry_delay_ms == 30000


def test_settle_jitter_uses_rand() -> None:
    policy = RetryPolicy(jitter=True, jitter_ratio=0.5)
    s = settle(_running(), JobResult.failure("t"), T1, policy, rand=lambda: 0.5)
    assert s.retry_delay_ms == 1250
    with pytest.raises(ValueError):
        settle(_running(), JobResult.failure("t"), T1, policy)


def test_settle_dead_letters_when_budget_spent() -> None:
    s = settle(_running(3), JobResult.failure("perm", "ValidationError"), T1, RetryPolicy())
    assert s.job.status is JobStatus.FAILED and s.job.retry_count == 4
    assert s.job.completed_at == T1
    assert s.retry_delay_ms is None and s.dead_lettered is True


def test_settle_zero_retries_dead_letters_first_failure() -> None:
    s = settle(_running(max_retries=0), JobResult.failure("x"), T1, RetryPolicy())
    assert s.dead_lettered is True and s.job.retry_count == 1


def test_settlement_is_frozen() -> None:
    s = settle(_running(), JobResult.success(), T1, RetryPolicy())
    with pytest.raises(AttributeError):
        s.dead_lettered = True  # type: ignore[misc]


# --- stats ----------------------------------------------------------------------------------


def test_average_duration() -> None:
    assert average_duration(0.0, 0) == 0.0
    assert average_duration(123.0, 0) == 0.0
    assert average_duration(300.0, 4) == 75.0


def test_stats_models_defaults() -> None:
    q = QueueStats(queue_name="default")
    assert (q.size, q.processed_total, q.avg_duration_ms, q.size_by_priority) == (0, 0, 0.0, {})
    assert QueueStats(queue_name="a").size_by_priority is not q.size_by_priority
    report = JobStatsReport(total_processed=3, queues=[q])
    data = report.model_dump(mode="json")
    assert data["total_processed"] == 3 and data["dlq_size"] == 0
    assert data["queues"][0]["queue_name"] == "default"
    assert JobStatsReport().queues == []
