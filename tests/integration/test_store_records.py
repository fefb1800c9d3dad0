"""The record writes that travel with a message (``RedisJobStore.*_record``), applied the
way the transport applies them: through ``store.enqueue`` with the message, after a JSON
round trip (they ride in a message header)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.adapters.redis_store import RecordWrite, RedisJobStore
from boundary_celery.core.job import (
    Job,
    JobError,
    complete_job,
    create_job,
    fail_job,
    prepare_retry,
    start_job,
)
from boundary_celery.core.priority import Priority
from boundary_celery.core.status import JobStatus
from boundary_celery.core.validation import JobInput

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
STARTED = T0 + timedelta(seconds=5)
FAILED_AT = T0 + timedelta(seconds=6, milliseconds=250)
NOW = T0 + timedelta(minutes=2)
DUE = NOW + timedelta(minutes=10)


@pytest.fixture
def store(sandbox) -> Iterator[RedisJobStore]:
    s = RedisJobStore(sandbox.url, prefix=sandbox.prefix)
    yield s
    s.close()


def wire(write: RecordWrite) -> RecordWrite:
    """The write as the transport receives it (a JSON message header)."""
    return json.loads(json.dumps(write))


def new_job(queue: str, **spec: object) -> Job:
    data = {"job_type": "t.rec", "queue": queue, "args": {"n": 1}, "priority": "high",
            "max_retries": 2, "tenant_id": "acme", "metadata": {"trace": "t1"}, **spec}
    return create_job(JobInput.parse(data), uuid.uuid4(), T0)


def publish(store: RedisJobStore, job: Job, write: RecordWrite, due: datetime | None = None,
            ) -> str:
    message = json.dumps({"headers": {"id": str(job.id), "task": job.job_type}, "body": ""})
    store.enqueue(job.queue, job.priority, message, str(job.id), due=due, write=wire(write))
    return message


def test_new_record_stores_the_whole_job_with_its_message(sandbox, store):
    q = sandbox.queue()
    job = new_job(q, retry_policy={"initial_delay_ms": 10})
    message = publish(store, job, store.new_record(job))
    assert store.find_job(job.id) == job
    assert sandbox.redis.lrange(list_key(q, Priority.HIGH.celery), 0, -1) == [message]
    assert q in store.list_queues()
    assert store.queue_stats(q).size == 1
    assert store.queue_stats(q).retried_total == 0


def test_new_record_of_a_delayed_job_waits_in_the_scheduled_set(sandbox, store):
    q = sandbox.queue()
    job = new_job(q, execute_at=DUE)
    publish(store, job, store.new_record(job), due=DUE)
    assert store.find_job(job.id) == job
    assert job.status is JobStatus.SCHEDULED
    assert store.queue_stats(q).size == 0
    [entry] = store.scheduled_jobs()
    assert (entry.id, entry.due_at_ms, entry.job) == (str(job.id), int(DUE.timestamp() * 1000),
                                                      job)


def test_new_record_replaces_no_field_it_does_not_set(sandbox, store):
    q = sandbox.queue()
    job = new_job(q)
    write = store.new_record(job)
    assert "clear" not in write and "count" not in write
    assert write["set"][write["set"].index("status") + 1] == "pending"


def _failed_once(job: Job) -> Job:
    """``job`` run once and failed with budget left (retrying, retry_count 1)."""
    running = start_job(job, STARTED)
    return fail_job(running, {"message": "flaky", "type": "RuntimeError"}, FAILED_AT)


def test_retry_record_settles_the_attempt_and_counts_it(sandbox, store):
    q = sandbox.queue()
    original = new_job(q)
    store.save_job(start_job(original, STARTED))
    retrying = _failed_once(original)
    assert retrying.status is JobStatus.RETRYING and retrying.retry_count == 1

    publish(store, retrying, store.retry_record(retrying, NOW, DUE), due=DUE)

    found = store.find_job(original.id)
    assert found.status is JobStatus.RETRYING
    assert found.retry_count == 1
    assert found.error == JobError(message="flaky", type="RuntimeError")
    assert found.updated_at == NOW
    assert found.execute_at == DUE
    # fields the write does not name are the stored record's
    assert (found.args, found.created_at, found.started_at, found.tenant_id, found.metadata) == (
        original.args, T0, STARTED, "acme", {"trace": "t1"})
    assert store.queue_stats(q).retried_total == 1
    assert store.scheduled_count() == 1 and store.queue_stats(q).size == 0

    second = fail_job(start_job(found, NOW), {"message": "again", "type": "RuntimeError"},
                      NOW + timedelta(seconds=1))
    publish(store, second, store.retry_record(second, NOW, DUE), due=DUE)
    assert store.find_job(original.id).retry_count == 2
    assert store.queue_stats(q).retried_total == 2


def test_retry_record_without_an_error_keeps_the_stored_one(sandbox, store):
    q = sandbox.queue()
    stored = _failed_once(new_job(q))
    store.save_job(stored)
    bare = stored.model_copy(update={"error": None, "retry_count": 2})
    write = store.retry_record(bare, NOW, DUE)
    assert "error" not in write["set"]
    publish(store, bare, write, due=DUE)
    found = store.find_job(stored.id)
    assert found.retry_count == 2 and found.error == stored.error


def test_requeue_record_clears_the_last_run(sandbox, store):
    q = sandbox.queue()
    dead = _failed_once(new_job(q)).model_copy(update={
        "status": JobStatus.FAILED, "completed_at": FAILED_AT, "result": {"partial": True},
        "duration_ms": 1250.0, "execute_at": T0 + timedelta(seconds=1)})
    store.save_job(dead)
    before = store.record(str(dead.id))
    assert {"result", "started_at", "completed_at", "duration_ms", "execute_at"} <= set(before)

    again = prepare_retry(dead, NOW)
    publish(store, again, store.requeue_record(again, NOW))

    after = store.record(str(dead.id))
    for cleared in ("result", "started_at", "completed_at", "duration_ms", "execute_at"):
        assert cleared not in after, cleared
    found = store.find_job(dead.id)
    assert found == again
    assert found.status is JobStatus.PENDING
    assert found.max_retries == found.retry_count == 1  # one more failure: back to the DLQ
    assert found.error == dead.error and found.created_at == T0
    assert store.queue_stats(q).retried_total == 0
    assert store.queue_stats(q).size == 1


def test_requeue_record_with_reset_retries(sandbox, store):
    q = sandbox.queue()
    done = complete_job(start_job(new_job(q), STARTED), {"ok": 1}, FAILED_AT)
    dead = done.model_copy(update={"status": JobStatus.FAILED, "retry_count": 2})
    store.save_job(dead)
    again = prepare_retry(dead, NOW, reset_retries=True)
    publish(store, again, store.requeue_record(again, NOW))
    found = store.find_job(dead.id)
    assert found == again
    assert (found.retry_count, found.max_retries, found.result) == (0, 2, None)


def test_reschedule_record_puts_the_job_back_until_due(sandbox, store):
    q = sandbox.queue()
    job = new_job(q)
    publish(store, job, store.new_record(job))
    assert store.pop_job(q) == job

    publish(store, job, store.reschedule_record(NOW, DUE), due=DUE)

    found = store.find_job(job.id)
    assert found == job.model_copy(update={"status": JobStatus.SCHEDULED, "updated_at": NOW,
                                           "execute_at": DUE})
    assert store.queue_stats(q).size == 0
    assert [(e.id, e.due_at_ms) for e in store.scheduled_jobs()] == [
        (str(job.id), int(DUE.timestamp() * 1000))]
    assert store.queue_stats(q).retried_total == 0
    assert store.move_due(DUE) == 1
    assert store.find_job(job.id).status is JobStatus.PENDING
    assert store.queue_stats(q).size == 1
