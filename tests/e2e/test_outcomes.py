"""Every outcome recorded, with the shipped defaults: Celery's hard and soft time limits
are failures of their own type that follow the retry policy; a pool child that dies
mid-job is retried by the policy, never requeued without bound, never left running."""

from __future__ import annotations

from boundary_celery.core import JobStatus
from boundary_celery.testing import wait_for

APP = "tests.e2e.outcomes_app"


def _final(jobs, job_id, status, timeout=30):
    return wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is status and j,
                    timeout=timeout, interval=0.1, message=f"job {status.value}")


def test_hard_time_limit_is_a_failure_that_follows_the_retry_policy(
    sandbox, make_jobs, worker_factory
):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker = worker_factory([q], APP)
    job_id = jobs.enqueue("outcomes.hard_limited", {"key": "h"}, queue=q)
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "TimeLimitExceeded"
    assert "time limit" in job.error.message
    assert job.retry_count == 2  # max_retries 1: two attempts, then the DLQ
    assert sandbox.redis.llen(f"{sandbox.prefix}:started:h") == 2
    assert [j.id for j in jobs.failed_jobs()] == [job.id]
    assert jobs.queue_stats(q).failed_total == 1
    assert worker.running


def test_a_job_types_timeout_ms_is_its_hard_time_limit(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    job_id = jobs.enqueue("outcomes.timeout_ms", {"key": "t"}, queue=q)
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "TimeLimitExceeded"
    assert "0.8 s" in job.error.message
    assert job.duration_ms is not None and 700 <= job.duration_ms < 5000


def test_an_enqueues_timeout_ms_is_its_hard_time_limit(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    job_id = jobs.enqueue("outcomes.soft_limited", {"key": "e"}, queue=q, timeout_ms=400)
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "TimeLimitExceeded"  # the hard 0.4 s came before the soft 1 s
    assert "0.4 s" in job.error.message
    # Ended at the hard limit, not at the soft one (Celery's pool arms hard after soft).
    assert job.duration_ms is not None and 350 <= job.duration_ms < 950


def test_plain_tasks_hard_time_limit_is_final(sandbox, make_jobs, worker_factory):
    app, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    job_id = app.send_task("outcomes.plain_limited", args=["p"], queue=q).id
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "TimeLimitExceeded"
    assert sandbox.redis.llen(f"{sandbox.prefix}:started:p") == 1


def test_soft_time_limit_is_recorded_with_its_reason(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    job_id = jobs.enqueue("outcomes.soft_limited", {"key": "s"}, queue=q)
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "SoftTimeLimitExceeded"


def test_lost_pool_child_is_retried_by_the_policy_and_completes(
    sandbox, make_jobs, worker_factory
):
    app, jobs = make_jobs()
    q = sandbox.queue()
    worker = worker_factory([q], APP)
    job_id = app.send_task("outcomes.dies_once", args=["d"], queue=q).id
    job = _final(jobs, job_id, JobStatus.COMPLETED)
    assert job.retry_count == 1  # the lost attempt counted as a failure
    assert sandbox.redis.llen(f"{sandbox.prefix}:started:d") == 2
    assert job.result == "survived"
    assert worker.running


def test_arguments_the_handler_cannot_take_end_in_the_dlq(sandbox, make_jobs, worker_factory):
    app, jobs = make_jobs()
    q = sandbox.queue()
    worker = worker_factory([q], APP)
    job_id = app.send_task("outcomes.tick", args=[1, 2, 3], kwargs={"nope": 1}, queue=q).id
    job = _final(jobs, job_id, JobStatus.FAILED)
    assert job.error.type == "PoisonMessageError"  # never left running
    assert "too many positional arguments" in job.error.message
    assert [j.id for j in jobs.failed_jobs()] == [job.id]
    assert worker.running
