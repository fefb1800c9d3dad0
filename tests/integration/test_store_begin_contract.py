"""The Redis ``begin`` script applies the core's delivery rule: for every stored status
(or none) and every pair of stored/message retry counts, its verdict is
``core.delivery.delivery_verdict``'s, plus ``missing`` when there is no record and nothing
to create one from. A skipped delivery leaves the record untouched; a run marks it running."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.core.delivery import DELIVERY_OK, delivery_verdict
from boundary_celery.core.job import Job, create_job
from boundary_celery.core.status import JobStatus
from boundary_celery.core.validation import JobInput

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=30)
WORKER = "w-begin@localhost"
COUNTS = (0, 1, 2)
STATUSES: tuple[JobStatus | None, ...] = (None, *JobStatus)

CASES = [
    pytest.param(status, stored_rc, message_rc, with_create,
                 id=f"{status.value if status else 'none'}-stored{stored_rc}"
                    f"-msg{message_rc}-{'create' if with_create else 'nocreate'}")
    for status, stored_rc, message_rc, with_create in itertools.product(
        STATUSES, COUNTS, COUNTS, (False, True))
    if status is not None or stored_rc == 0  # no record: no stored retry count
]


@pytest.fixture
def store(sandbox) -> Iterator[RedisJobStore]:
    s = RedisJobStore(sandbox.url, prefix=sandbox.prefix)
    yield s
    s.close()


def new_job(queue: str, **update: object) -> Job:
    job = create_job(JobInput.parse({"job_type": "t.begin", "queue": queue, "args": {"n": 1},
                                     "max_retries": 3}), uuid.uuid4(), T0)
    return job.model_copy(update=update) if update else job


def expected(status: JobStatus | None, stored_rc: int, message_rc: int,
             with_create: bool) -> str:
    if status is None:
        return delivery_verdict(None, None, message_rc) if with_create else "missing"
    return delivery_verdict(status, stored_rc, message_rc)


def test_cases_cover_every_status_and_count():
    assert len(CASES) == (len(JobStatus) * 9 + 3) * 2
    verdicts = {expected(*case.values) for case in CASES}
    assert verdicts == {"ok", "stale", "completed", "cancelled", "missing"}


@pytest.mark.parametrize(("status", "stored_rc", "message_rc", "with_create"), CASES)
def test_begin_verdict_equals_the_core_verdict(sandbox, store, status, stored_rc, message_rc,
                                               with_create):
    r = sandbox.redis
    job = new_job(sandbox.queue())
    jid = str(job.id)
    if status is not None:
        store.save_job(job.model_copy(update={"status": status, "retry_count": stored_rc}))
    before = store.record(jid)
    create = job.model_copy(update={"retry_count": message_rc}) if with_create else None

    call = store.begin_call(jid, NOW, WORKER, message_rc, 3, create=create)
    verdict = call.run(r)

    assert verdict == expected(status, stored_rc, message_rc, with_create)
    after = store.record(jid)
    if verdict != DELIVERY_OK:
        assert after == before, "a skipped delivery must not touch the record"
        return
    assert after["status"] == "running"
    assert after["worker"] == WORKER
    assert after["retry_count"] == str(message_rc)
    assert after["max_retries"] == "3"
    assert after["attempts"] == "1"
    started = store.find_job(jid)
    assert started is not None
    assert started.started_at == started.updated_at == NOW
    assert (started.job_type, started.args, started.created_at) == ("t.begin", {"n": 1}, T0)


def test_create_is_ignored_when_a_record_exists(sandbox, store):
    job = new_job(sandbox.queue(), metadata={"origin": "stored"})
    store.save_job(job)
    other = job.model_copy(update={"job_type": "t.other", "metadata": {"origin": "message"}})
    assert store.begin_call(str(job.id), NOW, WORKER, 0, 3, create=other).run(
        sandbox.redis) == "ok"
    found = store.find_job(job.id)
    assert found.job_type == "t.begin" and found.metadata == {"origin": "stored"}


def test_store_begin_creates_a_missing_record(sandbox, store):
    job = new_job(sandbox.queue(), retry_count=1)
    assert store.begin(job, NOW, WORKER) == "ok"
    found = store.find_job(job.id)
    assert found.status is JobStatus.RUNNING and found.retry_count == 1
    assert found.created_at == NOW  # begin() records when the record was made
    assert store.begin(job.model_copy(update={"retry_count": 0}), NOW, WORKER) == "stale"


# --- one runner per attempt: a second delivery of a running attempt -------------------------


@pytest.mark.parametrize(("renewed_s_ago", "same_tag", "verdict"), [
    (5, False, "busy"),  # another delivery's live lease: a duplicate message
    (5, True, "ok"),  # the same delivery again (redelivered after its lease lapsed)
    (120, False, "ok"),  # the other delivery's lease lapsed: its worker died
    (None, False, "ok"),  # the other delivery was handed back or acked
])
def test_a_running_attempt_held_under_a_live_lease_is_not_begun_again(
        sandbox, store, renewed_s_ago, same_tag, verdict):
    r = sandbox.redis
    job = new_job(sandbox.queue())
    jid = str(job.id)
    assert store.begin_call(jid, NOW, "first", 0, 3, create=job, tag="tag-1",
                            lease_s=60).run(r) == "ok"
    if renewed_s_ago is not None:
        r.zadd(store.keys.unacked_index, {"tag-1": NOW.timestamp() - renewed_s_ago})
    before = store.record(jid)

    got = store.begin_call(jid, NOW, "second", 0, 3, tag="tag-1" if same_tag else "tag-2",
                           lease_s=60).run(r)

    r.zrem(store.keys.unacked_index, "tag-1")
    assert got == verdict
    after = store.record(jid)
    if verdict == "busy":
        assert after == before
    else:
        assert after["worker"] == "second" and after["attempts"] == "2"
        assert after["tag"] == ("tag-1" if same_tag else "tag-2")
    assert delivery_verdict("running", 0, 0,
                            held_elsewhere=renewed_s_ago == 5 and not same_tag) == verdict
