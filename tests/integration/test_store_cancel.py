"""The Redis ``cancel`` script applies the core's cancellation rule: for every stored status,
from a producer and from a worker that stopped the delivery, its action is
``core.cancel_action``'s and the record, the scheduled set and the TTL follow it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.core.job import Job, create_job
from boundary_celery.core.priority import Priority
from boundary_celery.core.status import CancelAction, JobStatus, cancel_action
from boundary_celery.core.validation import JobInput

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=30)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture
def store(sandbox) -> Iterator[RedisJobStore]:
    s = RedisJobStore(sandbox.url, prefix=sandbox.prefix, completed_ttl_s=600)
    yield s
    s.close()


def saved(store: RedisJobStore, status: JobStatus, queue: str) -> Job:
    """A job stored with ``status``; a scheduled or retrying one also waits in the
    scheduled set (its message held until due), as the transport leaves it."""
    job = create_job(JobInput.parse({"job_type": "t.cancel", "queue": queue}), uuid.uuid4(), T0)
    job = job.model_copy(update={"status": status})
    store.save_job(job)
    if status in (JobStatus.SCHEDULED, JobStatus.RETRYING):
        store.enqueue(queue, Priority.NORMAL, '{"m": 1}', str(job.id),
                      due=T0 + timedelta(hours=1))
    return job


@pytest.mark.parametrize(("status", "stopped"), itertools.product(JobStatus, (False, True)))
def test_cancel_applies_the_core_rule(store, sandbox, status, stopped):
    job = saved(store, status, sandbox.queue())
    jid, key = str(job.id), store.keys.job(str(job.id))
    before = store.record(jid)
    r = sandbox.redis
    waits = status in (JobStatus.SCHEDULED, JobStatus.RETRYING)
    assert (r.zscore(store.keys.scheduled, jid) is not None) is waits
    action, after = store.cancel(jid, NOW, stopped=stopped)
    assert action is cancel_action(status, stopped=stopped)
    record = store.record(jid)
    if action is CancelAction.CANCEL:
        assert after.status is JobStatus.CANCELLED
        assert record == {**before, "status": "cancelled", "completed_at": str(NOW_MS),
                          "updated_at": str(NOW_MS)}
        assert 0 < r.ttl(key) <= 600  # expires like a completed record
        assert r.zscore(store.keys.scheduled, jid) is None
        assert not r.hexists(store.keys.scheduled_messages, jid)
    elif action is CancelAction.REQUEST:
        assert after == job
        assert record == {**before, "cancel_requested": str(NOW_MS)}
        assert r.ttl(key) == -1
    else:
        assert after == job and record == before
        assert (r.zscore(store.keys.scheduled, jid) is not None) is waits
    assert store.find_job(jid) == after
    assert store.cancel_requested(jid) is (action is not CancelAction.NONE
                                           or status is JobStatus.CANCELLED)


def test_cancel_of_an_unknown_job_writes_nothing(store, sandbox):
    jid = str(uuid.uuid4())
    assert store.cancel(jid, NOW) is None
    assert store.cancel("not-a-uuid", NOW) is None
    assert not sandbox.redis.exists(store.keys.job(jid))
