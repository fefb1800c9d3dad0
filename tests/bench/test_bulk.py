"""``enqueue_many`` against real Redis and a real worker (no timing assertions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.priority import Priority
from boundary_celery.shell import wire as H
from boundary_celery.shell.bulk import enqueue_many
from boundary_celery.testing import Sandbox, wait_for

pytestmark = pytest.mark.e2e

N = 1000
LEVELS = Priority.ordered()


def _items(queue: str, n: int = N) -> list[dict[str, Any]]:
    return [{"job_type": "e2e.record", "args": {"tag": f"t{i}"},
             "priority": LEVELS[i % 5].value, "queue": queue} for i in range(n)]


def test_enqueue_many_writes_records_and_messages_then_drains(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    _, jobs = make_jobs()
    queue = sandbox.queue("bulk")
    ids = jobs.enqueue_many(_items(queue), batch_size=200)
    assert len(ids) == N and len(set(ids)) == N

    r = sandbox.redis
    pipe = r.pipeline(transaction=False)
    for jid in ids:
        pipe.hgetall(sandbox.keys.job(jid))
    for i, (jid, record) in enumerate(zip(ids, pipe.execute(), strict=True)):
        assert record["id"] == jid
        assert record["status"] == "pending"
        assert record["job_type"] == "e2e.record"
        assert record["queue"] == queue
        assert record["priority"] == LEVELS[i % 5].value
        assert json.loads(record["args"]) == {"tag": f"t{i}"}

    for rank, level in enumerate(LEVELS):
        messages = [json.loads(m) for m in r.lrange(list_key(queue, level.celery), 0, -1)]
        assert {m["headers"]["id"] for m in messages} == set(ids[rank::5])
        for m in messages:
            assert m["headers"]["task"] == "e2e.record"
            assert m["properties"]["priority"] == level.celery
            assert H.META in m["headers"]
            assert not H.TRANSIENT & m["headers"].keys()  # stripped by the transport
    assert queue in r.smembers(sandbox.keys.queues)

    worker_factory([queue])
    order_key = f"{sandbox.prefix}:order"
    wait_for(lambda: r.llen(order_key) == N, timeout=90, message="1000 jobs run")
    assert sorted(r.lrange(order_key, 0, -1)) == sorted(f"t{i}" for i in range(N))

    def all_completed() -> bool:
        pipe = r.pipeline(transaction=False)
        for jid in ids:
            pipe.hget(sandbox.keys.job(jid), "status")
        return set(pipe.execute()) == {"completed"}

    wait_for(all_completed, timeout=30, message="every record completed")
    assert sum(r.llen(list_key(queue, level.celery)) for level in LEVELS) == 0


def test_enqueue_many_validates_everything_before_publishing(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    _, jobs = make_jobs()
    queue = sandbox.queue("bulk-bad")
    items = _items(queue, 10)
    items[7]["priority"] = "urgent"
    with pytest.raises(JobValidationError):
        enqueue_many(jobs, items)
    r = sandbox.redis
    assert sum(r.llen(list_key(queue, level.celery)) for level in LEVELS) == 0
    assert not list(r.scan_iter(f"{sandbox.prefix}:job:*"))
    assert enqueue_many(jobs, []) == []


def test_enqueue_many_sends_future_jobs_to_the_scheduler(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    _, jobs = make_jobs()
    queue = sandbox.queue("bulk-later")
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = enqueue_many(jobs, [{"job_type": "e2e.record", "args": {"tag": "x"}, "queue": queue,
                               "execute_at": later}])
    r = sandbox.redis
    assert r.zscore(sandbox.keys.scheduled, ids[0]) is not None
    assert r.hget(sandbox.keys.job(ids[0]), "status") == "scheduled"
    assert sum(r.llen(list_key(queue, level.celery)) for level in LEVELS) == 0
