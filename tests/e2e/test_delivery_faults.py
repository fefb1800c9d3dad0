"""Every exit of a delivery ends in a terminal record or a message delivered again.

Real workers on a private Redis (the tests pause its writes), shipped defaults:

- a retry whose publish meets a stalled Redis is published once Redis answers (the
  job stays under its lease meanwhile), for a declared job type and for a plain task's
  own ``self.retry()``; Celery alone turns that publish error into
  ``Reject(requeue=False)`` and the job is gone;
- a retry whose arguments do not fit the handler is dead-lettered at once, naming them;
- a message from a producer without the task, lacking a required argument, is
  dead-lettered naming the argument;
- a copy of a running job's message (a duplicate publish) is not run beside it;
- an expired message from a plain-Celery producer is recorded cancelled, reason
  ``expired``;
- a handler's ``Reject(requeue=False)`` dead-letters the job, its ``Ignore`` cancels it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.core import JobStatus
from boundary_celery.core.errors import JobValidationError
from boundary_celery.redis_server import RedisServer
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

APP = "tests.e2e.delivery_app"


@pytest.fixture
def private() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rig(private: RedisServer) -> Iterator[tuple[Sandbox, Jobs, str, list[WorkerProcess]]]:
    box = Sandbox(url=private.url)
    q = box.queue()
    app = Celery("delivery-test")
    jobs = boundary_celery.install(app, box.settings())
    workers: list[WorkerProcess] = []
    yield box, jobs, q, workers
    for worker in workers:
        worker.stop()
    jobs.store.close()


def _start(box: Sandbox, q: str, workers: list[WorkerProcess], *,
           concurrency: int = 1) -> WorkerProcess:
    worker = WorkerProcess(APP, box.env(), [q], concurrency=concurrency, cwd=ROOT)
    workers.append(worker)
    return worker.start().wait_ready()


def _terminal(jobs: Jobs, job_id: str):
    job = jobs.find_job(job_id)
    done = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    return job if job is not None and job.status in done else None


def _runs(box: Sandbox, key: str) -> int:
    return int(box.redis.get(f"{box.prefix}:runs:{key}") or 0)


@pytest.mark.parametrize("task", ["delivery.declared_stall", "delivery.plain_stall"])
def test_a_retry_published_into_a_stalled_redis_is_published_when_it_answers(rig, task):
    box, jobs, q, workers = rig
    _start(box, q, workers)
    job_id = jobs.enqueue(task, {"key": "k"}, queue=q)

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=60, message="the job ends")
    assert job.status is JobStatus.COMPLETED, (job.status, job.error)
    assert job.retry_count == 1
    assert _runs(box, "k") == 2
    assert jobs.dlq_size() == 0


def test_a_retry_whose_arguments_do_not_fit_is_dead_lettered_naming_them(rig):
    box, jobs, q, workers = rig
    _start(box, q, workers)
    job_id = jobs.enqueue("delivery.retry_bad_args", {"key": "bad"}, queue=q)

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=30, message="the job ends")
    assert job.status is JobStatus.FAILED
    assert "unexpected" in job.error.message, job.error
    assert [j.id for j in jobs.failed_jobs(10)] == [job.id]
    assert _runs(box, "bad") == 1  # dead-lettered at once, not retried


def test_a_message_missing_a_required_argument_is_dead_lettered_naming_it(rig):
    box, jobs, q, workers = rig
    _start(box, q, workers)
    plain = Celery("old-producer", broker=box.url)  # no install(): a rolling deploy
    job_id = plain.send_task("delivery.needs_two", kwargs={"key": "k2"}, queue=q).id

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=30, message="the job ends")
    assert job.status is JobStatus.FAILED
    assert "region" in job.error.message, job.error
    assert _runs(box, "k2") == 0


def test_a_copy_of_a_running_jobs_message_is_not_run_beside_it(rig):
    box, jobs, q, workers = rig
    _start(box, q, workers, concurrency=2)
    job_id = jobs.enqueue("delivery.slow", {"key": "dup", "seconds": 4}, queue=q)
    wait_for(lambda: _runs(box, "dup") == 1, timeout=20, message="the job runs")
    # The message as the worker holds it (kombu's unacked entry), pushed again under a
    # new delivery tag: what a publish retried after a lost reply leaves in the queue.
    message = next(entry[0] for entry in map(json.loads, box.redis.hvals(box.keys.unacked))
                   if entry[0]["headers"]["id"] == job_id)
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    box.redis.lpush(q, json.dumps(message))
    done_quick = jobs.enqueue("delivery.quick", {"key": "after"}, queue=q)

    wait_for(lambda: _terminal(jobs, done_quick), timeout=20, message="a later job runs")
    job = wait_for(lambda: _terminal(jobs, job_id), timeout=20, message="the job ends")
    assert job.status is JobStatus.COMPLETED
    assert _runs(box, "dup") == 1
    assert box.redis.llen(q) == 0


def test_an_expired_message_from_a_plain_producer_is_recorded_cancelled(rig):
    box, jobs, q, workers = rig
    plain = Celery("old-producer", broker=box.url)
    past = datetime.now(UTC) - timedelta(minutes=1)
    job_id = plain.send_task("delivery.quick", kwargs={"key": "late"}, queue=q,
                             expires=past).id
    _start(box, q, workers)

    job = wait_for(lambda: _terminal(jobs, job_id), timeout=30, message="recorded")
    assert job.status is JobStatus.CANCELLED
    assert job.error is not None and "expired" in job.error.message.lower(), job.error
    assert _runs(box, "late") == 0


def test_celerys_reject_and_ignore_leave_no_record_running(rig):
    box, jobs, q, workers = rig
    _start(box, q, workers)
    rejected = jobs.enqueue("delivery.reject", {"key": "rj"}, queue=q)
    ignored = jobs.enqueue("delivery.ignore", {"key": "ig"}, queue=q)

    job = wait_for(lambda: _terminal(jobs, rejected), timeout=30, message="rejected ends")
    assert job.status is JobStatus.FAILED and job.error.type == "Rejected"
    assert "not for us" in job.error.message
    assert [j.id for j in jobs.failed_jobs(10)] == [job.id]
    job = wait_for(lambda: _terminal(jobs, ignored), timeout=30, message="ignored ends")
    assert job.status is JobStatus.CANCELLED and job.error.type == "Ignored"
    assert (_runs(box, "rj"), _runs(box, "ig")) == (1, 1)


def test_an_enqueue_missing_a_required_argument_is_refused_naming_it(rig):
    q = rig[2]
    from tests.e2e import delivery_app  # registers the task in this producer too

    assert delivery_app.needs_two.name in delivery_app.app.tasks
    producer = delivery_app.jobs
    with pytest.raises(JobValidationError) as info:
        producer.enqueue("delivery.needs_two", {"key": "k3"}, queue=q)
    assert info.value.field == "args" and "region" in str(info.value)
