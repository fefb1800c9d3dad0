"""Cancellation end to end: every outcome recorded, and a cancelled job never runs.

Real workers (tests/e2e/cancel_app.py) with the shipped defaults. "Never ran" is proved
by a later job on the same queue that does run, while the cancelled one's handler
never wrote its side effect.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boundary_celery.core.job import Job
from boundary_celery.core.status import JobStatus
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.e2e.cancel_app"


def status_of(jobs: Any, job_id: str) -> JobStatus | None:
    job = jobs.find_job(job_id)
    return job.status if job is not None else None


def ran(sandbox: Sandbox) -> list[str]:
    return sandbox.redis.lrange(f"{sandbox.prefix}:ran", 0, -1)


def noted(sandbox: Sandbox, kind: str, key: str) -> int:
    return int(sandbox.redis.llen(f"{sandbox.prefix}:{kind}:{key}"))


def assert_cancelled_now(job: Job | None, job_id: str) -> None:
    assert job is not None and str(job.id) == job_id
    assert job.status is JobStatus.CANCELLED and job.completed_at is not None


def assert_not_scheduled(sandbox: Sandbox, job_id: str) -> None:
    r, keys = sandbox.redis, sandbox.keys
    assert r.zscore(keys.scheduled, job_id) is None
    assert not r.hexists(keys.scheduled_messages, job_id)


def run_marker(sandbox: Sandbox, jobs: Any, queue: str, tag: str = "marker") -> None:
    """Enqueue a job after the cancelled ones and wait until it ran."""
    marker = jobs.enqueue("cancel.record", {"tag": tag}, queue=queue)
    wait_for(lambda: status_of(jobs, marker) is JobStatus.COMPLETED, 20,
             message=f"{tag} job ran")


def test_scheduled_job_cancelled_before_its_time_never_runs(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)  # its embedded scheduler is running
    due = datetime.now(UTC) + timedelta(seconds=2)
    doomed = jobs.schedule("cancel.record", {"tag": "doomed"}, execute_at=due, queue=q)
    later = jobs.schedule("cancel.record", {"tag": "later"}, queue=q,
                          execute_at=due + timedelta(seconds=1))
    assert sandbox.redis.zscore(sandbox.keys.scheduled, doomed) is not None

    assert_cancelled_now(jobs.cancel_job(doomed), doomed)
    assert_not_scheduled(sandbox, doomed)
    assert jobs.scheduled_count() == 1

    wait_for(lambda: status_of(jobs, later) is JobStatus.COMPLETED, 20,
             message="the job scheduled after it ran")
    assert ran(sandbox) == ["later"]
    assert status_of(jobs, doomed) is JobStatus.CANCELLED
    assert jobs.scheduled_count() == 0 and jobs.queue_size(q) == 0
    assert jobs.cancel_job(doomed).status is JobStatus.CANCELLED  # again: unchanged


def test_waiting_job_cancelled_before_any_worker_never_runs(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue()
    doomed = jobs.enqueue("cancel.record", {"tag": "doomed"}, queue=q, priority="high")
    assert_cancelled_now(jobs.cancel_job(doomed), doomed)
    assert jobs.queue_size(q) == 1  # its message still waits in the queue

    worker = worker_factory([q], APP)
    run_marker(sandbox, jobs, q)
    assert ran(sandbox) == ["marker"]
    assert status_of(jobs, doomed) is JobStatus.CANCELLED
    assert jobs.queue_size(q) == 0  # delivered, skipped and acknowledged
    wait_for(lambda: any("Skipping delivery" in line and doomed in line
                         for line in worker.log_text().splitlines()), 10,
             message="the worker logs the skipped delivery")


def test_celery_revoke_of_scheduled_and_waiting_jobs_records_them_cancelled(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    app, jobs = make_jobs()
    app.conf.result_backend = "boundary_celery.shell.results:JobStoreBackend"
    q = sandbox.queue()
    due = datetime.now(UTC) + timedelta(seconds=3)
    scheduled = jobs.schedule("cancel.record", {"tag": "scheduled"}, execute_at=due, queue=q)
    waiting = jobs.enqueue("cancel.record", {"tag": "waiting"}, queue=q)
    by_result = jobs.enqueue("cancel.record", {"tag": "by-result"}, queue=q)
    other = jobs.enqueue("cancel.record", {"tag": "other"}, queue=q)

    app.control.revoke(scheduled)  # Celery's own API: recorded at once
    app.control.revoke([waiting])
    app.AsyncResult(by_result).revoke()
    for jid in (scheduled, waiting, by_result):
        assert status_of(jobs, jid) is JobStatus.CANCELLED, jid
    assert_not_scheduled(sandbox, scheduled)
    assert status_of(jobs, other) is JobStatus.PENDING
    assert app.AsyncResult(waiting).state == "REVOKED"

    worker_factory([q], APP)
    wait_for(lambda: status_of(jobs, other) is JobStatus.COMPLETED, 20, message="other ran")
    wait_for(lambda: datetime.now(UTC) > due + timedelta(seconds=1), 10)
    run_marker(sandbox, jobs, q)
    assert sorted(ran(sandbox)) == ["marker", "other"]
    for jid in (scheduled, waiting, by_result):
        assert status_of(jobs, jid) is JobStatus.CANCELLED, jid
    assert jobs.scheduled_count() == 0 and jobs.queue_size(q) == 0


def test_running_handler_sees_its_cancellation_requested(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    jid = jobs.enqueue("cancel.cooperative", {"key": "c", "seconds": 30}, queue=q)
    wait_for(lambda: noted(sandbox, "started", "c") == 1, 15, message="handler started")

    after = jobs.cancel_job(jid)
    assert after is not None and after.status is JobStatus.RUNNING  # only requested
    assert jobs.store.cancel_requested(jid) is True
    wait_for(lambda: noted(sandbox, "seen", "c") == 1, 10,
             message="the handler saw cancel_requested()")
    assert noted(sandbox, "done", "c") == 0
    wait_for(lambda: status_of(jobs, jid) is JobStatus.CANCELLED, 10,
             message="JobCancelledError recorded as cancelled")
    run_marker(sandbox, jobs, q)  # the worker goes on
    assert noted(sandbox, "done", "c") == 0
    assert noted(sandbox, "started", "c") == 1  # not retried
    assert jobs.queue_stats(q).failed_total == 0 and jobs.dlq_size() == 0


def test_terminate_kills_a_running_job_and_records_it_cancelled(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], APP)
    jid = jobs.enqueue("cancel.sleep", {"key": "t", "seconds": 30}, queue=q)
    wait_for(lambda: noted(sandbox, "started", "t") == 1, 15, message="handler started")

    assert jobs.cancel_job(jid, terminate=True).status is JobStatus.RUNNING
    job = wait_for(lambda: (j := jobs.find_job(jid)) and j.status is JobStatus.CANCELLED
                   and j, 15, message="the worker records the killed job cancelled")
    assert job.completed_at is not None
    run_marker(sandbox, jobs, q)  # a new pool process takes the next job
    assert noted(sandbox, "done", "t") == 0
    assert status_of(jobs, jid) is JobStatus.CANCELLED


def test_job_a_worker_holds_unstarted_is_skipped_and_recorded_cancelled(
    sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue()
    # Two prefetched deliveries for one process: the second waits in the worker, already
    # marked running by the consumer on receipt.
    worker_factory([q], APP, env={"BOUNDARY_WORKERS__PREFETCH_MULTIPLIER": "2"})
    busy = jobs.enqueue("cancel.sleep", {"key": "busy", "seconds": 3}, queue=q)
    held = jobs.enqueue("cancel.record", {"tag": "held"}, queue=q)
    wait_for(lambda: noted(sandbox, "started", "busy") == 1, 15, message="first job started")
    wait_for(lambda: status_of(jobs, held) is JobStatus.RUNNING, 10,
             message="the second job received by the worker")
    assert noted(sandbox, "done", "busy") == 0

    assert jobs.cancel_job(held).status is JobStatus.RUNNING  # requested + revoke broadcast
    wait_for(lambda: status_of(jobs, held) is JobStatus.CANCELLED, 15,
             message="the worker skips the revoked job and records it cancelled")
    wait_for(lambda: status_of(jobs, busy) is JobStatus.COMPLETED, 15, message="busy done")
    run_marker(sandbox, jobs, q)
    assert ran(sandbox) == ["marker"]
