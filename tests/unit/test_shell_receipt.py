"""``shell.receipt``: the ``begin`` call the consumer runs for a received job message,
built from the real message the publisher stored (real Redis, real Celery app)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import celery

from boundary_celery.adapters.redis_keys import list_keys
from boundary_celery.adapters.redis_store import ScriptCall
from boundary_celery.core.job import JobStatus, complete_job
from boundary_celery.shell import wire
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.receipt import begin_hook

WORKER = "w-receipt@localhost"


class Message:
    """The one thing the hook reads of a kombu message: its headers (input data)."""

    def __init__(self, headers: dict[str, Any] | None) -> None:
        self.headers = headers


def handler(n: int = 0) -> int:
    return n


def published_headers(sandbox, queue: str) -> dict[str, Any]:
    """The headers of the one message waiting in ``queue`` (as a worker receives them)."""
    raw = [m for key in list_keys(queue) for m in sandbox.redis.lrange(key, 0, -1)]
    assert len(raw) == 1, raw
    return dict(json.loads(raw[0])["headers"])


def setup(sandbox, make_jobs, **options: Any):
    app, jobs = make_jobs()
    q = sandbox.queue()
    jobs.register_handler("t.x", handler, queue=q, max_retries=5)

    @app.task(name="t.plain", shared=False)
    def plain() -> None:
        return None

    class NotAJob(celery.Task):  # registered by hand: the one way a task is not a job
        name = "t.celery"

        def run(self) -> None:
            return None

    app.register_task(NotAJob())

    jid = jobs.enqueue("t.x", {"n": 1}, **options)
    return jobs, jid, published_headers(sandbox, q)


def test_a_job_message_gives_a_begin_call_that_marks_it_running(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    assert headers["id"] == jid and wire.META in headers
    call = begin_hook(jobs, WORKER)(Message(headers))
    assert isinstance(call, ScriptCall)
    before = utcnow()
    assert call.run(sandbox.redis) == "ok"
    record = jobs.store.record(jid)
    assert record["status"] == "running"
    assert record["worker"] == WORKER
    assert record["attempts"] == "1"
    job = jobs.find_job(jid)
    assert job.status is JobStatus.RUNNING
    assert job.started_at is not None
    assert before - timedelta(seconds=1) <= job.started_at <= utcnow()
    assert (job.retry_count, job.max_retries) == (0, 5)


def test_a_redelivery_of_a_running_job_runs_again(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    call = begin_hook(jobs, WORKER)(Message(headers))
    assert call.run(sandbox.redis) == "ok"
    assert call.run(sandbox.redis) == "ok"
    assert jobs.store.record(jid)["attempts"] == "2"


def test_a_completed_job_is_not_begun_again(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    call = begin_hook(jobs, WORKER)(Message(headers))
    assert call.run(sandbox.redis) == "ok"
    now = utcnow()
    jobs.store.complete(complete_job(jobs.find_job(jid), {"n": 1}, now), now)
    assert jobs.find_job(jid).status is JobStatus.COMPLETED
    assert call.run(sandbox.redis) == "completed"
    record = jobs.store.record(jid)
    assert record["status"] == "completed"
    assert record["attempts"] == "1"


def test_the_message_retry_count_is_the_attempt_begun(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    headers["retries"] = 2  # Celery's retry count is the job's
    hook = begin_hook(jobs, WORKER)
    assert hook(Message(headers)).run(sandbox.redis) == "ok"
    assert jobs.find_job(jid).retry_count == 2
    # an older attempt delivered late is a duplicate
    old = {**headers, "retries": 1}
    assert hook(Message(old)).run(sandbox.redis) == "stale"
    assert jobs.find_job(jid).retry_count == 2


def test_max_retries_from_the_message_unless_only_defaulted(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs, max_retries=1)
    assert headers[wire.META]["mr"] == 1
    hook = begin_hook(jobs, WORKER)
    assert hook(Message(headers)).run(sandbox.redis) == "ok"
    assert jobs.find_job(jid).max_retries == 1
    # a publisher that did not know the job type only guessed mr: the task's own wins
    guessed = {**headers, wire.META: {**headers[wire.META], "mr": 9, "d": ["mr"]}}
    assert hook(Message(guessed)).run(sandbox.redis) == "ok"
    assert jobs.find_job(jid).max_retries == 5


def test_no_call_without_the_boundary_header(sandbox, make_jobs):
    jobs, _, headers = setup(sandbox, make_jobs)
    hook = begin_hook(jobs, WORKER)
    del headers[wire.META]
    assert hook(Message(headers)) is None
    assert hook(Message({})) is None
    assert hook(Message(None)) is None


def test_no_call_for_a_task_that_is_not_a_boundary_task(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    assert "t.celery" in jobs.app.tasks and "t.x" in jobs.app.tasks
    hook = begin_hook(jobs, WORKER)
    assert hook(Message({**headers, "task": "t.celery"})) is None
    assert hook(Message({**headers, "task": "t.unknown"})) is None
    assert jobs.find_job(jid).status is JobStatus.PENDING


def test_a_plain_app_task_is_a_job(sandbox, make_jobs):
    jobs, jid, headers = setup(sandbox, make_jobs)
    hook = begin_hook(jobs, WORKER)
    assert hook(Message({**headers, "task": "t.plain"})).run(sandbox.redis) == "ok"
    assert jobs.find_job(jid).status is JobStatus.RUNNING
