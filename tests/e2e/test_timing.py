"""End-to-end timing with the shipped defaults: retry backoff and delayed jobs on time.

Real worker subprocesses run ``tests/e2e/timing_app.py``: no tuned setting anywhere, so
retries follow the default policy (exponential, initial 1 s) and the worker's embedded
scheduler its default settings (it sleeps until the soonest job, at most 5 s, and is
woken when a sooner one is scheduled). The handlers note ``time.time()`` when an attempt
starts. The bound is 0.6 s. What keeps it on a loaded 2-core machine without widening
it: every test first runs a warm-up job of the same type through the same path (the
pool child's imports and first Redis connection, the script loads and, for retries, the
failure and retry path), so only the steady-state path is timed; and nothing is timed
from the test process (the times compared are the handler's and the due time).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for

pytestmark = pytest.mark.e2e

APP = "tests.e2e.timing_app"
TOLERANCE_S = 0.6
#: The scheduler publishes a job when ``now_ms >= due_ms`` (epoch ms, truncated), so a
#: start can precede the due time by less than a millisecond; never by more.
CLOCK_GRAIN_S = 0.002


def _starts(sandbox, key: str) -> list[float]:
    return [float(t) for t in sandbox.redis.lrange(f"{sandbox.prefix}:starts:{key}", 0, -1)]


def _finished(jobs, job_id):
    job = jobs.find_job(job_id)
    return job if job is not None and job.status in (JobStatus.COMPLETED,
                                                     JobStatus.FAILED) else None


def _warm_worker(sandbox, make_jobs, worker_factory, job_type: str, args: dict):
    """A worker on a fresh queue that has already run one ``job_type`` job to the end."""
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    warm = jobs.enqueue(job_type, args, queue=q)
    job = wait_for(lambda: _finished(jobs, warm), timeout=30, message="the warm-up job")
    assert job.status is JobStatus.COMPLETED
    return jobs, q


def test_default_retry_backoff_starts_attempts_1s_then_2s_apart(
    sandbox, make_jobs, worker_factory
):
    # The warm-up fails once, so the failure and retry path is warm too.
    jobs, q = _warm_worker(sandbox, make_jobs, worker_factory, "timing.fails",
                           {"key": "warm", "failures": 1})
    assert len(_starts(sandbox, "warm")) == 2

    job_id = jobs.enqueue("timing.fails", {"key": "k", "failures": 2}, queue=q)
    job = wait_for(lambda: _finished(jobs, job_id), timeout=30, message="the job completes")
    assert job.status is JobStatus.COMPLETED and job.retry_count == 2
    starts = _starts(sandbox, "k")
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Default policy: 1 s after the first failure, 2 s after the second. Each retry is due
    # its delay after the failure, itself after the attempt's start: never sooner.
    for gap, expected in zip(gaps, (1.0, 2.0), strict=True):
        assert expected - CLOCK_GRAIN_S <= gap <= expected + TOLERANCE_S, gaps


@pytest.mark.parametrize("behind_a_later_job", [False, True],
                         ids=["into-an-empty-set", "before-a-later-job"])
def test_scheduled_job_starts_within_0_6_s_of_its_time(
    sandbox, make_jobs, worker_factory, behind_a_later_job
):
    jobs, q = _warm_worker(sandbox, make_jobs, worker_factory, "timing.starts",
                           {"key": "warm"})
    if behind_a_later_job:  # the scheduler then sleeps toward this one (5 s at most)
        jobs.schedule("timing.starts", {"key": "later"},
                      execute_at=datetime.now(UTC) + timedelta(seconds=60), queue=q)
    execute_at = datetime.now(UTC) + timedelta(seconds=2)
    job_id = jobs.schedule("timing.starts", {"key": "k"}, execute_at=execute_at, queue=q)

    started = float(wait_for(lambda: sandbox.redis.lindex(f"{sandbox.prefix}:starts:k", 0),
                             timeout=15, message="the scheduled job starts"))
    late = started - execute_at.timestamp()
    assert -CLOCK_GRAIN_S <= late <= TOLERANCE_S, f"started {late:+.3f} s from its due time"
    job = wait_for(lambda: _finished(jobs, job_id), timeout=10, message="the job completes")
    assert job.status is JobStatus.COMPLETED
    assert _starts(sandbox, "later") == []
