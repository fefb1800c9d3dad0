"""``Jobs`` implements every port over Redis: the guide's port-level cases, no worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boundary_celery import ports
from boundary_celery.core.job import JobStatus, complete_job, create_job, fail_job, start_job


def test_jobs_satisfies_every_port(make_jobs):
    _, jobs = make_jobs()
    for proto in (ports.JobQueue, ports.JobStore, ports.JobStats, ports.JobRegistry):
        assert isinstance(jobs, proto), proto.__name__


def test_enqueue_then_dequeue_most_urgent_first(sandbox, make_jobs):
    """The guide's enqueue-and-dequeue test, with the port methods."""
    _, jobs = make_jobs()
    q = sandbox.queue()
    low = create_job({"job_type": "test-job", "args": {"value": 1}, "priority": "low"},
                     uuid.uuid4())
    high = create_job({"job_type": "test-job", "args": {"value": 42}, "priority": "high"},
                      uuid.uuid4())
    assert jobs.enqueue_job(q, low) == low.id
    jobs.enqueue_job(q, high)
    assert jobs.queue_size(q) == 2
    first = jobs.dequeue_job(q)
    assert first.id == high.id and first.args == {"value": 42} and first.job_type == "test-job"
    assert jobs.dequeue_job(q).id == low.id
    assert jobs.dequeue_job(q) is None and jobs.queue_size(q) == 0


def test_scheduled_job_is_not_counted_until_moved(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    now = datetime.now(UTC)
    job = create_job({"job_type": "test-job"}, uuid.uuid4())
    jobs.schedule_job(q, job, now + timedelta(seconds=30))
    assert jobs.queue_size(q) == 0 and jobs.scheduled_count() == 1
    assert jobs.process_scheduled_jobs(now) == 0
    assert jobs.process_scheduled_jobs(now + timedelta(seconds=31)) == 1
    assert jobs.queue_size(q) == 1 and jobs.scheduled_count() == 0
    assert jobs.find_job(job.id).status is JobStatus.PENDING


def test_save_dead_letter_and_counters(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    t0 = datetime.now(UTC)
    ok = start_job(create_job({"job_type": "a", "queue": q}, uuid.uuid4(), t0), t0)
    ok = complete_job(ok, {"done": True}, t0 + timedelta(milliseconds=40))
    jobs.save_job(ok)
    assert jobs.find_job(ok.id).result == {"done": True}
    jobs.record_outcome(ok)

    bad = start_job(create_job({"job_type": "b", "queue": q, "max_retries": 0}, uuid.uuid4(),
                               t0), t0)
    bad = fail_job(bad, {"message": "nope", "type": "X"}, t0 + timedelta(milliseconds=60))
    jobs.record_retry(bad)
    jobs.dead_letter(bad)
    jobs.record_outcome(bad)
    assert [j.id for j in jobs.failed_jobs(5)] == [bad.id]
    stats = jobs.queue_stats(q)
    assert (stats.processed_total, stats.succeeded_total, stats.failed_total,
            stats.retried_total) == (2, 1, 1, 1)
    assert stats.avg_duration_ms == 50.0
