"""``SchedulerLoop`` on real Redis with the shipped defaults: two loops on one store
publish each due job once; a loop never misses the wake-up of a job scheduled while it
reads the soonest due time.

The loops run in threads of this process, each with its own ``Jobs`` and Redis
connections (as two workers' embedded schedulers would), sleeping until the soonest due
job and woken by the store when a sooner one is scheduled. Jobs are scheduled while
they run: a burst due at one and the same millisecond (both loops wake for it and move
batches side by side), then jobs spread over 0.7 s, each due sooner than the one
before (each a new soonest job: a wake-up for both loops).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from boundary_celery.adapters.redis_keys import list_keys
from boundary_celery.core.job import JobStatus
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.scheduler import SchedulerLoop
from boundary_celery.testing import wait_for


def _queued_ids(sandbox, queue: str) -> list[str]:
    r = sandbox.redis
    return [json.loads(m)["headers"]["id"]
            for key in list_keys(queue) for m in r.lrange(key, 0, -1)]


def test_two_loops_publish_each_due_job_exactly_once(sandbox, make_jobs):
    _, jobs = make_jobs()
    _, other = make_jobs()  # a second scheduler: its own store, client and wake channel
    assert jobs.store is not other.store
    q = sandbox.queue()
    loops = [SchedulerLoop(jobs), SchedulerLoop(other)]
    assert all(loop.interval_s == 5.0 for loop in loops)  # the shipped default
    for loop in loops:
        loop.start()
    try:
        now = utcnow()
        # After enqueue_many is done: 1,900 jobs take ~0.3 s alone, over 3 s on a 2-core
        # machine running other suites beside this one (seen: the assertion below failed).
        first_due = now + timedelta(seconds=5)
        items = (
            [{"execute_at": first_due + timedelta(milliseconds=800)}] * 1200  # 2.4 batches
            + [{"execute_at": first_due + timedelta(milliseconds=700 - i)} for i in range(700)]
        )
        levels = ("critical", "high", "normal", "low", "bulk")
        ids = jobs.enqueue_many(
            {"job_type": "t.sched", "args": {"i": i}, "queue": q,
             "priority": levels[i % 5], **item}
            for i, item in enumerate(items))
        assert utcnow() < first_due, "scheduling took too long to prove anything"
        wait_for(lambda: jobs.scheduled_count() == 0, timeout=20,
                 message="every scheduled job moved")
        wait_for(lambda: jobs.queue_size(q) >= len(ids), timeout=5, message="all queued")
    finally:
        for loop in loops:
            loop.stop()
    assert all(loop._thread is not None and not loop._thread.is_alive() for loop in loops)

    copies = Counter(_queued_ids(sandbox, q))
    assert sorted(copies) == sorted(ids)
    assert [jid for jid, n in copies.items() if n > 1] == []
    assert sum(loop.moved_total for loop in loops) == len(ids)
    assert sandbox.redis.hlen(sandbox.keys.scheduled_messages) == 0
    assert {jobs.find_job(jid).status for jid in ids[::50]} == {JobStatus.PENDING}


def test_a_job_scheduled_right_after_the_due_time_read_wakes_the_loop(sandbox, make_jobs):
    """The loop subscribes to the wake channel before it reads the soonest due time, so a
    sooner job scheduled just after that read still wakes it (otherwise it would sleep
    the whole 5 s interval)."""
    _, jobs = make_jobs()
    _, reader = make_jobs()  # the test's reads: its own client, not the loop's
    q = sandbox.queue()
    loop = SchedulerLoop(jobs)
    assert loop.interval_s == 5.0
    read_due = jobs.store.next_due_ms
    scheduled: list[str] = []

    def read_then_schedule() -> int | None:
        due = read_due()  # nothing scheduled yet: the loop will sleep the interval...
        if not scheduled:  # ...unless woken by this job, scheduled right after the read
            scheduled.append(jobs.enqueue("t.sched", {"k": 1}, queue=q,
                                          execute_at=utcnow() + timedelta(milliseconds=300)))
        return due

    jobs.store.next_due_ms = read_then_schedule  # type: ignore[method-assign]
    loop.start()
    try:
        wait_for(lambda: reader.queue_size(q) == 1, timeout=3, interval=0.01,
                 message="the job moved well before the 5 s interval")
    finally:
        loop.stop()
    assert scheduled and loop.moved_total == 1
