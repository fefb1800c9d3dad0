"""Retries with measured backoff, the DLQ, and retry_job, with a real worker."""

from __future__ import annotations

import itertools
import uuid

from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for


def _terminal(jobs, job_id, statuses=("completed", "failed")):
    job = jobs.find_job(job_id)
    return job if job is not None and job.status.value in statuses else None


def test_fails_twice_then_succeeds_with_backoff(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])
    job_id = jobs.enqueue("e2e.flaky", {"key": "k1", "failures": 2}, queue=q, priority="high")

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=20, message="flaky completes")
    assert job.status is JobStatus.COMPLETED
    assert job.retry_count == 2
    assert job.result == {"attempts": 3}
    assert job.priority.value == "high"
    times = [float(t) for t in sandbox.redis.lrange(f"{sandbox.prefix}:attempts:k1", 0, -1)]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # policy of e2e.flaky: 500 ms then 1000 ms; shipped defaults: the scheduler wakes on time
    for gap, expected in zip(gaps, (0.5, 1.0), strict=True):
        assert expected - 0.05 <= gap <= expected + 0.6, gaps
    stats = jobs.queue_stats(q)
    assert (stats.succeeded_total, stats.failed_total, stats.retried_total) == (1, 0, 2)


def test_always_failing_job_ends_in_dlq_and_retry_job_runs_it_again(
    sandbox, make_jobs, worker_factory
):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])
    job_id = jobs.enqueue("e2e.always_fail", {"key": "dead"}, queue=q, priority="low",
                          tenant_id="acme", metadata={"request_id": "r1"})

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=20, message="job dead-lettered")
    assert job.status is JobStatus.FAILED
    assert job.retry_count == 3  # max_retries 2 -> 3 attempts, retry_count max_retries + 1
    assert job.error.type == "ValueError" and job.error.message == "boom dead"
    assert "Traceback" in job.error.stacktrace
    assert job.completed_at is not None and job.tenant_id == "acme"
    assert job.metadata == {"request_id": "r1"}
    attempts_key = f"{sandbox.prefix}:attempts:dead"
    assert sandbox.redis.llen(attempts_key) == 3
    assert [j.id for j in jobs.failed_jobs(10)] == [job.id]
    assert jobs.dlq_size() == 1

    again = jobs.retry_job(job_id)
    assert again is not None and again.status is JobStatus.PENDING
    wait_for(lambda: sandbox.redis.llen(attempts_key) == 4, timeout=10, message="rerun")
    rerun = wait_for(lambda: _terminal(jobs, job_id, ("failed",)), timeout=10)
    assert rerun.priority.value == "low" and rerun.queue == q
    assert jobs.dlq_size() == 1  # one more failure puts it back
    assert sandbox.redis.llen(attempts_key) == 4
    assert jobs.retry_job(str(uuid.uuid4())) is None


def test_failure_shape_is_a_failure_without_traceback(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])
    job_id = jobs.enqueue("e2e.fail_shape", queue=q)
    job = wait_for(lambda: _terminal(jobs, job_id), timeout=15)
    assert job.status is JobStatus.FAILED
    assert (job.error.type, job.error.message) == ("GatewayError", "Payment gateway unavailable")
    assert job.error.stacktrace is None
