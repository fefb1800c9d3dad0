"""Port contract: behaviour every implementation of the ports must share.

Each test runs once per implementation (memory, redis; see the ``ports`` fixture) and
asserts the same thing for both. Known deviations are marked ``deviates(<impl>=reason)``:
that implementation's run is a strict xfail until it is fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from boundary_celery.core import (
    Job,
    JobInput,
    JobStatus,
    Priority,
    QueueStats,
    complete_job,
    create_job,
    dead_letter_job,
    fail_job,
    prepare_retry,
    start_job,
)
from boundary_celery.ports import JobQueue, JobRegistry, JobStats, JobStore

#: A fixed moment in whole milliseconds (the Redis record keeps milliseconds).
T0 = datetime(2025, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)
ERROR = {"message": "boom", "type": "BoomError", "stacktrace": "Traceback ...\nBoomError"}
LEVELS = [p.value for p in Priority.ordered()]


def new_job(queue: str, job_type: str = "contract-job", *, at: datetime = T0,
            job_id: UUID | None = None, **fields: Any) -> Job:
    """A new job made by the core, as a publisher would."""
    spec = JobInput.parse({"job_type": job_type, "queue": queue, **fields})
    return create_job(spec, job_id or uuid4(), at)


def dead_job(queue: str, *, at: datetime = T0, job_id: UUID | None = None,
             **fields: Any) -> Job:
    """A job settled as failed by ``core.dead_letter_job`` at ``at`` (never ran)."""
    job = new_job(queue, at=at - timedelta(seconds=5), job_id=job_id, **fields)
    return dead_letter_job(job, ERROR, at)


def exhausted_job(queue: str, *, max_retries: int = 2, **fields: Any) -> Job:
    """A job that ran and failed until its retries were used up (core.fail_job)."""
    job = new_job(queue, max_retries=max_retries, **fields)
    at = T0
    while job.status is not JobStatus.FAILED:
        job = start_job(job, at)
        at += timedelta(milliseconds=25)
        job = fail_job(job, ERROR, at)
        at += timedelta(seconds=1)
    return job


def ran_job(queue: str, *, ok: bool, duration_ms: int, **fields: Any) -> Job:
    """A job that ran for ``duration_ms`` and completed (ok) or failed for good."""
    job = start_job(new_job(queue, max_retries=0, **fields), T0)
    end = T0 + timedelta(milliseconds=duration_ms)
    return complete_job(job, {"ok": True}, end) if ok else fail_job(job, ERROR, end)


def to_ms(job: Job | None) -> dict[str, Any] | None:
    """``job``'s fields with every time truncated to the millisecond."""
    if job is None:
        return None
    data = job.model_dump()
    for name, value in data.items():
        if isinstance(value, datetime):
            data[name] = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return data


def wall_now() -> datetime:
    """Now, in whole milliseconds (scheduling is decided against the wall clock on Redis)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def unique_type(label: str) -> str:
    return f"contract.{label}.{uuid4().hex[:8]}"


# -- the protocols ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "protocol"),
    [("queue", JobQueue), ("store", JobStore), ("stats", JobStats), ("registry", JobRegistry)],
)
def test_implements_the_protocol(ports, attr, protocol):
    assert isinstance(getattr(ports, attr), protocol)


# -- JobStore: records -----------------------------------------------------------------------


def test_save_then_find_returns_an_equal_new_job(ports):
    job = new_job(
        ports.queue_name(),
        "contract.rich",
        args={"user": {"id": 7, "tags": ["a", "b"]}, "ratio": 0.25, "flag": True, "none": None},
        priority="high",
        max_retries=5,
        metadata={"trace": "abc", "nested": {"n": [1, 2]}},
        tenant_id="tenant-42",
        retry_policy={"backoff_strategy": "linear", "initial_delay_ms": 250,
                      "max_delay_ms": 9000, "jitter": True, "jitter_ratio": 0.2},
    )
    ports.store.save_job(job)
    assert ports.store.find_job(job.id) == job
    assert ports.store.find_job(str(job.id)) == job


def test_save_then_find_returns_an_equal_completed_job(ports):
    job = ran_job(ports.queue_name(), ok=True, duration_ms=1234, tenant_id="t1")
    assert job.result == {"ok": True} and job.duration_ms == 1234.0
    ports.store.save_job(job)
    assert ports.store.find_job(job.id) == job


def test_save_then_find_returns_an_equal_failed_job(ports):
    job = exhausted_job(ports.queue_name(), metadata={"k": "v"})
    assert job.error is not None and job.error.stacktrace
    ports.store.save_job(job)
    assert ports.store.find_job(job.id) == job


def test_save_then_find_returns_an_equal_scheduled_job(ports):
    job = new_job(ports.queue_name(), execute_at=T0 + timedelta(minutes=5, milliseconds=7))
    assert job.status is JobStatus.SCHEDULED
    ports.store.save_job(job)
    assert ports.store.find_job(job.id) == job


def test_save_replaces_the_whole_record(ports):
    pending = new_job(ports.queue_name(), metadata={"m": 1})
    done = complete_job(start_job(pending, T0), {"r": 1}, T0 + timedelta(seconds=1))
    ports.store.save_job(done)
    ports.store.save_job(pending)
    assert ports.store.find_job(pending.id) == pending


@pytest.mark.parametrize("job_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", ""])
def test_find_of_an_unknown_or_malformed_id_is_none(ports, job_id):
    ports.store.save_job(new_job(ports.queue_name()))
    assert ports.store.find_job(job_id) is None


def test_find_of_an_unknown_uuid_is_none(ports):
    assert ports.store.find_job(uuid4()) is None


# -- JobStore: the dead letter queue ----------------------------------------------------------


def test_dead_letter_puts_the_job_at_the_head(ports):
    q = ports.queue_name()
    jobs = [dead_job(q, at=T0 + timedelta(seconds=i)) for i in range(3)]
    for job in jobs:
        ports.store.dead_letter(job)
        assert ports.store.failed_jobs()[0] == job
    assert ports.store.failed_jobs() == jobs[::-1]
    assert ports.store.dlq_size() == 3


def test_dead_letter_saves_the_record(ports):
    job = dead_job(ports.queue_name())
    ports.store.dead_letter(job)
    assert ports.store.find_job(job.id) == job


def test_dead_letter_head_is_the_last_dead_lettered_even_if_settled_earlier(ports):
    q = ports.queue_name()
    later = dead_job(q, at=T0 + timedelta(seconds=10))
    earlier = dead_job(q, at=T0)
    ports.store.dead_letter(later)
    ports.store.dead_letter(earlier)
    assert [j.id for j in ports.store.failed_jobs()] == [earlier.id, later.id]


def test_dead_letter_head_is_the_last_dead_lettered_at_the_same_millisecond(ports):
    q = ports.queue_name()
    first = dead_job(q, job_id=UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"))
    second = dead_job(q, job_id=UUID("00000000-0000-4000-8000-000000000001"))
    ports.store.dead_letter(first)
    ports.store.dead_letter(second)
    assert [j.id for j in ports.store.failed_jobs()] == [second.id, first.id]


def test_dead_letter_of_a_job_already_in_the_dlq_moves_it_to_the_head(ports):
    q = ports.queue_name()
    a, b = dead_job(q, at=T0), dead_job(q, at=T0 + timedelta(seconds=1))
    ports.store.dead_letter(a)
    ports.store.dead_letter(b)
    a_again = a.model_copy(update={"completed_at": T0 + timedelta(seconds=2),
                                   "updated_at": T0 + timedelta(seconds=2)})
    ports.store.dead_letter(a_again)
    assert ports.store.failed_jobs() == [a_again, b]
    assert ports.store.dlq_size() == 2


def test_failed_jobs_respects_the_limit(ports):
    q = ports.queue_name()
    jobs = [dead_job(q, at=T0 + timedelta(seconds=i)) for i in range(4)]
    for job in jobs:
        ports.store.dead_letter(job)
    assert [j.id for j in ports.store.failed_jobs(2)] == [jobs[3].id, jobs[2].id]
    assert [j.id for j in ports.store.failed_jobs(1)] == [jobs[3].id]
    assert len(ports.store.failed_jobs(10)) == 4


def test_failed_jobs_default_limit_is_20(ports):
    q = ports.queue_name()
    for i in range(21):
        ports.store.dead_letter(dead_job(q, at=T0 + timedelta(seconds=i)))
    assert len(ports.store.failed_jobs()) == 20
    assert ports.store.dlq_size() == 21


@pytest.mark.parametrize("limit", [0, -1])
def test_failed_jobs_with_a_limit_below_one_is_empty(ports, limit):
    ports.store.dead_letter(dead_job(ports.queue_name()))
    assert ports.store.failed_jobs(limit) == []


def test_empty_dlq(ports):
    assert ports.store.failed_jobs() == []
    assert ports.store.dlq_size() == 0


def test_purge_one_removes_it_and_returns_1(ports):
    q = ports.queue_name()
    a, b, c = (dead_job(q, at=T0 + timedelta(seconds=i)) for i in range(3))
    for job in (a, b, c):
        ports.store.dead_letter(job)
    assert ports.store.purge_dlq(b.id) == 1
    assert [j.id for j in ports.store.failed_jobs()] == [c.id, a.id]
    assert ports.store.dlq_size() == 2
    assert ports.store.find_job(b.id) is None
    assert ports.store.purge_dlq(str(c.id)) == 1
    assert [j.id for j in ports.store.failed_jobs()] == [a.id]


def test_purge_of_a_job_not_in_the_dlq_returns_0(ports):
    q = ports.queue_name()
    dead = dead_job(q)
    alive = new_job(q)
    ports.store.dead_letter(dead)
    ports.store.save_job(alive)
    assert ports.store.purge_dlq(uuid4()) == 0
    assert ports.store.purge_dlq("not-a-uuid") == 0
    assert ports.store.purge_dlq(alive.id) == 0
    assert ports.store.find_job(alive.id) == alive
    assert ports.store.dlq_size() == 1


def test_purge_twice_returns_1_then_0(ports):
    job = dead_job(ports.queue_name())
    ports.store.dead_letter(job)
    assert ports.store.purge_dlq(job.id) == 1
    assert ports.store.purge_dlq(job.id) == 0


def test_purge_all(ports):
    q = ports.queue_name()
    for i in range(3):
        ports.store.dead_letter(dead_job(q, at=T0 + timedelta(seconds=i)))
    assert ports.store.purge_dlq(None) == 3
    assert ports.store.dlq_size() == 0
    assert ports.store.failed_jobs() == []
    assert ports.store.purge_dlq() == 0


# -- JobStore: retry_job ----------------------------------------------------------------------


def test_retry_job_returns_the_job_prepared_by_core(ports):
    dead = exhausted_job(ports.queue_name(), max_retries=2, priority="high")
    assert (dead.retry_count, dead.max_retries) == (3, 2)
    ports.store.dead_letter(dead)
    retried = ports.store.retry_job(dead.id)
    assert retried is not None
    assert retried == prepare_retry(dead, retried.updated_at)
    assert retried.status is JobStatus.PENDING
    assert (retried.retry_count, retried.max_retries) == (3, 3)


def test_retry_job_reset_retries_sets_retry_count_to_0(ports):
    dead = exhausted_job(ports.queue_name(), max_retries=2)
    ports.store.dead_letter(dead)
    retried = ports.store.retry_job(str(dead.id), reset_retries=True)
    assert retried is not None
    assert retried == prepare_retry(dead, retried.updated_at, reset_retries=True)
    assert (retried.retry_count, retried.max_retries) == (0, 2)


def test_retry_job_takes_the_job_out_of_the_dlq_and_saves_it(ports):
    q = ports.queue_name()
    other = dead_job(q, at=T0 - timedelta(seconds=1))
    dead = exhausted_job(q)
    ports.store.dead_letter(other)
    ports.store.dead_letter(dead)
    retried = ports.store.retry_job(dead.id)
    assert ports.store.dlq_size() == 1
    assert [j.id for j in ports.store.failed_jobs()] == [other.id]
    assert to_ms(ports.store.find_job(dead.id)) == to_ms(retried)


def test_retried_job_waits_in_its_queue_at_its_priority(ports):
    q = ports.queue_name()
    dead = exhausted_job(q, priority="low")
    ports.store.dead_letter(dead)
    retried = ports.store.retry_job(dead.id)
    assert ports.queue.queue_size(q) == 1
    assert ports.queue.queue_sizes_by_priority(q)["low"] == 1
    assert ports.queue.scheduled_count() == 0
    taken = ports.queue.dequeue_job(q)
    assert to_ms(taken) == to_ms(retried)
    assert ports.queue.dequeue_job(q) is None


def test_retry_job_of_a_job_not_in_the_dlq_is_none(ports):
    q = ports.queue_name()
    alive = new_job(q)
    ports.store.save_job(alive)
    assert ports.store.retry_job(uuid4()) is None
    assert ports.store.retry_job("not-a-uuid") is None
    assert ports.store.retry_job(alive.id) is None
    assert ports.store.find_job(alive.id) == alive
    assert ports.queue.queue_size(q) == 0


def test_retry_job_twice_is_none_the_second_time(ports):
    q = ports.queue_name()
    dead = dead_job(q)
    ports.store.dead_letter(dead)
    assert ports.store.retry_job(dead.id) is not None
    assert ports.store.retry_job(dead.id) is None
    assert ports.queue.queue_size(q) == 1


# -- JobStore: cancel_job --------------------------------------------------------------------


def cancelled_now(job: Job, before: datetime) -> None:
    """``job`` was cancelled by the call that started after ``before``."""
    assert job.status is JobStatus.CANCELLED
    assert job.completed_at is not None and job.completed_at >= before
    assert job.updated_at == job.completed_at


@pytest.mark.parametrize("job_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", ""])
def test_cancel_of_an_unknown_or_malformed_id_is_none(ports, job_id):
    ports.store.save_job(new_job(ports.queue_name()))
    assert ports.store.cancel_job(job_id) is None
    assert ports.store.cancel_requested(job_id) is False


def test_cancel_of_a_waiting_job_cancels_it_and_leaves_its_copy_queued(ports):
    q = ports.queue_name()
    job = new_job(q, priority="high")
    ports.queue.enqueue_job(q, job)
    assert ports.store.cancel_requested(job.id) is False
    before = wall_now()
    cancelled = ports.store.cancel_job(str(job.id))
    cancelled_now(cancelled, before)
    assert cancelled.model_dump(exclude={"status", "updated_at", "completed_at"}) == \
        job.model_dump(exclude={"status", "updated_at", "completed_at"})
    assert ports.store.find_job(job.id) == cancelled
    assert ports.store.cancel_requested(job.id) is True  # cancelled counts as requested
    # The waiting copy stays: whoever takes it finds the record cancelled (and skips it).
    assert ports.queue.queue_sizes_by_priority(q)["high"] == 1


def test_cancel_of_a_scheduled_job_takes_it_out_of_the_schedule(ports):
    q = ports.queue_name()
    due = wall_now() + timedelta(hours=1)
    job = new_job(q, execute_at=due)
    keep = new_job(q, execute_at=due)
    ports.queue.schedule_job(q, job, due)
    ports.queue.schedule_job(q, keep, due)
    cancelled_now(ports.store.cancel_job(job.id), T0)
    assert ports.queue.scheduled_count() == 1
    assert ports.queue.process_scheduled_jobs(due + timedelta(seconds=1)) == 1
    assert ports.queue.dequeue_job(q).id == keep.id
    assert ports.queue.dequeue_job(q) is None
    assert ports.store.find_job(job.id).status is JobStatus.CANCELLED


def test_cancel_of_a_job_waiting_for_its_retry(ports):
    q = ports.queue_name()
    retrying = fail_job(start_job(new_job(q, max_retries=3), T0), ERROR, T0)
    assert retrying.status is JobStatus.RETRYING
    due = wall_now() + timedelta(hours=1)
    ports.store.save_job(retrying)  # the record exists (a worker ran the attempt)
    ports.queue.schedule_job(q, retrying, due)
    cancelled = ports.store.cancel_job(retrying.id)
    cancelled_now(cancelled, T0)
    assert cancelled.retry_count == 1 and cancelled.error == retrying.error
    assert ports.queue.scheduled_count() == 0
    assert ports.queue.process_scheduled_jobs(due + timedelta(seconds=1)) == 0
    assert ports.queue.queue_size(q) == 0


def test_cancel_of_a_running_job_only_requests_it(ports):
    running = start_job(new_job(ports.queue_name()), T0)
    ports.store.save_job(running)
    assert ports.store.cancel_requested(running.id) is False
    after = ports.store.cancel_job(running.id)
    assert to_ms(after) == to_ms(running)  # status and every field unchanged
    assert ports.store.find_job(running.id) == after
    assert ports.store.cancel_requested(running.id) is True
    assert to_ms(ports.store.cancel_job(running.id)) == to_ms(running)  # asking again: same


@pytest.mark.parametrize("finish", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_job_changes_nothing(ports, finish):
    q = ports.queue_name()
    if finish == "completed":
        job = ran_job(q, ok=True, duration_ms=10)
        ports.store.save_job(job)
    elif finish == "failed":
        job = dead_job(q)
        ports.store.dead_letter(job)
    else:
        job = new_job(q)
        ports.store.save_job(job)
        job = ports.store.cancel_job(job.id)
    assert ports.store.cancel_job(job.id) == job
    assert ports.store.find_job(job.id) == job
    assert ports.store.cancel_requested(job.id) is (finish == "cancelled")
    assert ports.store.dlq_size() == (1 if finish == "failed" else 0)


def test_a_new_record_or_a_retry_from_the_dlq_drops_the_request(ports):
    q = ports.queue_name()
    running = start_job(new_job(q, max_retries=0), T0)
    ports.store.save_job(running)
    ports.store.cancel_job(running.id)
    ports.store.save_job(running)  # the whole record is replaced
    assert ports.store.cancel_requested(running.id) is False
    ports.store.cancel_job(running.id)
    ports.store.dead_letter(fail_job(running, ERROR, T0 + timedelta(seconds=1)))
    assert ports.store.retry_job(running.id).status is JobStatus.PENDING
    assert ports.store.cancel_requested(running.id) is False


# -- JobStats ---------------------------------------------------------------------------------


def test_queue_stats_of_an_unknown_queue_is_zeros(ports):
    q = ports.queue_name()
    assert ports.stats.queue_stats(q) == QueueStats(
        queue_name=q, size_by_priority=dict.fromkeys(LEVELS, 0)
    )


def test_record_outcome_counts_completed_and_failed_with_durations(ports):
    q = ports.queue_name()
    ports.stats.record_outcome(ran_job(q, ok=True, duration_ms=40))
    ports.stats.record_outcome(ran_job(q, ok=False, duration_ms=60))
    ports.stats.record_outcome(ran_job(q, ok=True, duration_ms=20))
    s = ports.stats.queue_stats(q)
    assert (s.processed_total, s.succeeded_total, s.failed_total, s.retried_total) == (3, 2, 1, 0)
    assert s.avg_duration_ms == pytest.approx(40.0)


def test_record_retry_counts_retries_only(ports):
    q = ports.queue_name()
    job = start_job(new_job(q), T0)
    retrying = fail_job(job, ERROR, T0 + timedelta(milliseconds=5))
    ports.stats.record_retry(retrying)
    ports.stats.record_retry(retrying)
    s = ports.stats.queue_stats(q)
    assert (s.processed_total, s.succeeded_total, s.failed_total, s.retried_total) == (0, 0, 0, 2)
    assert s.avg_duration_ms == 0.0


def test_record_outcome_ignores_non_terminal_jobs(ports):
    q = ports.queue_name()
    pending = new_job(q)
    running = start_job(pending, T0)
    retrying = fail_job(running, ERROR, T0 + timedelta(milliseconds=5))
    for job in (pending, running, retrying):
        ports.stats.record_outcome(job)
    s = ports.stats.queue_stats(q)
    assert (s.processed_total, s.succeeded_total, s.failed_total, s.retried_total) == (0, 0, 0, 0)


def test_average_duration_ignores_jobs_that_never_ran(ports):
    q = ports.queue_name()
    ports.stats.record_outcome(ran_job(q, ok=True, duration_ms=40))
    never_ran = dead_job(q)
    assert never_ran.duration_ms is None
    ports.stats.record_outcome(never_ran)
    s = ports.stats.queue_stats(q)
    assert (s.processed_total, s.failed_total) == (2, 1)
    assert s.avg_duration_ms == pytest.approx(40.0)


def test_dead_letter_does_not_count_by_itself(ports):
    q = ports.queue_name()
    job = exhausted_job(q)
    ports.store.dead_letter(job)
    s = ports.stats.queue_stats(q)
    assert (s.processed_total, s.failed_total, s.avg_duration_ms) == (0, 0, 0.0)
    ports.stats.record_outcome(job)
    assert ports.stats.queue_stats(q).failed_total == 1


def test_queue_stats_size_follows_waiting_jobs(ports):
    q = ports.queue_name()
    for priority in ("high", "high", "bulk"):
        ports.queue.enqueue_job(q, new_job(q, priority=priority))
    s = ports.stats.queue_stats(q)
    assert s.size == 3
    assert s.size_by_priority == {**dict.fromkeys(LEVELS, 0), "high": 2, "bulk": 1}


def test_job_stats_totals_and_per_queue_entries(ports):
    q1, q2 = ports.queue_name("a"), ports.queue_name("b")
    ports.stats.record_outcome(ran_job(q1, ok=True, duration_ms=10))
    ports.stats.record_outcome(ran_job(q2, ok=False, duration_ms=30))
    ports.stats.record_retry(new_job(q2))
    ports.store.dead_letter(dead_job(q2))
    ports.queue.enqueue_job(q1, new_job(q1))
    report = ports.stats.job_stats()
    assert (report.total_processed, report.total_succeeded, report.total_failed,
            report.total_retried) == (2, 1, 1, 1)
    assert report.dlq_size == 1
    assert report.scheduled_count == 0
    by_name = {s.queue_name: s for s in report.queues}
    assert by_name[q1] == ports.stats.queue_stats(q1)
    assert by_name[q2] == ports.stats.queue_stats(q2)
    assert by_name[q1].size == 1


def test_job_stats_counts_scheduled_jobs(ports):
    q = ports.queue_name()
    ports.queue.schedule_job(q, new_job(q), wall_now() + timedelta(hours=1))
    assert ports.stats.job_stats().scheduled_count == 1


# -- JobQueue ---------------------------------------------------------------------------------


def test_enqueue_returns_the_id_and_dequeue_the_job_still_pending(ports):
    q = ports.queue_name()
    job = new_job(q, args={"n": 1}, metadata={"m": "x"}, tenant_id="t", priority="high")
    assert ports.queue.enqueue_job(q, job) == job.id
    taken = ports.queue.dequeue_job(q)
    assert taken == job
    assert taken.status is JobStatus.PENDING
    assert ports.queue.dequeue_job(q) is None


def test_enqueue_puts_the_job_in_the_named_queue(ports):
    q = ports.queue_name()
    job = new_job("default")
    ports.queue.enqueue_job(q, job)
    assert ports.queue.dequeue_job(q).queue == q


def test_strict_priority_order(ports):
    q = ports.queue_name()
    order = ["bulk", "low", "critical", "normal", "high"]
    ids = {p: ports.queue.enqueue_job(q, new_job(q, priority=p)) for p in order}
    taken = [ports.queue.dequeue_job(q) for _ in order]
    assert [j.id for j in taken] == [ids[p] for p in LEVELS]
    assert ports.queue.dequeue_job(q) is None


def test_fifo_within_a_level(ports):
    q = ports.queue_name()
    normals = [new_job(q, args={"i": i}) for i in range(3)]
    for job in normals:
        ports.queue.enqueue_job(q, job)
    urgent = new_job(q, priority="critical")
    ports.queue.enqueue_job(q, urgent)
    assert [ports.queue.dequeue_job(q).id for _ in range(4)] == [urgent.id] + [
        j.id for j in normals
    ]


def test_dequeue_of_an_empty_queue_is_none(ports):
    assert ports.queue.dequeue_job(ports.queue_name()) is None


def test_queue_size_and_sizes_by_priority(ports):
    q = ports.queue_name()
    assert ports.queue.queue_size(q) == 0
    assert ports.queue.queue_sizes_by_priority(q) == dict.fromkeys(LEVELS, 0)
    for priority in ("high", "high", "bulk", "critical"):
        ports.queue.enqueue_job(q, new_job(q, priority=priority))
    assert ports.queue.queue_size(q) == 4
    assert ports.queue.queue_sizes_by_priority(q) == {
        "critical": 1, "high": 2, "normal": 0, "low": 0, "bulk": 1,
    }
    ports.queue.dequeue_job(q)
    assert ports.queue.queue_sizes_by_priority(q)["critical"] == 0
    assert ports.queue.queue_size(q) == 3


def test_queues_are_independent(ports):
    q1, q2 = ports.queue_name("a"), ports.queue_name("b")
    j1, j2 = new_job(q1, priority="bulk"), new_job(q2, priority="critical")
    ports.queue.enqueue_job(q1, j1)
    ports.queue.enqueue_job(q2, j2)
    assert (ports.queue.queue_size(q1), ports.queue.queue_size(q2)) == (1, 1)
    assert ports.queue.dequeue_job(q1).id == j1.id
    assert ports.queue.dequeue_job(q1) is None
    assert ports.queue.queue_size(q2) == 1


def test_enqueue_saves_the_job_for_the_store(ports):
    q = ports.queue_name()
    job = new_job(q)
    ports.queue.enqueue_job(q, job)
    assert ports.store.find_job(job.id) == job


def test_scheduled_job_is_counted_as_scheduled_not_waiting(ports):
    q = ports.queue_name()
    due = wall_now() + timedelta(hours=1)
    job = new_job(q, execute_at=due)
    assert ports.queue.schedule_job(q, job, due) == job.id
    assert ports.queue.queue_size(q) == 0
    assert ports.queue.queue_sizes_by_priority(q) == dict.fromkeys(LEVELS, 0)
    assert ports.queue.scheduled_count() == 1
    assert ports.queue.dequeue_job(q) is None
    assert ports.store.find_job(job.id).status is JobStatus.SCHEDULED


def test_process_scheduled_jobs_moves_nothing_before_due(ports):
    q = ports.queue_name()
    due = wall_now() + timedelta(hours=1)
    ports.queue.schedule_job(q, new_job(q, execute_at=due), due)
    assert ports.queue.process_scheduled_jobs(due - timedelta(milliseconds=1)) == 0
    assert ports.queue.scheduled_count() == 1
    assert ports.queue.queue_size(q) == 0


def test_process_scheduled_jobs_moves_a_due_job_pending(ports):
    q = ports.queue_name()
    due = wall_now() + timedelta(hours=1)
    job = new_job(q, execute_at=due, priority="high")
    ports.queue.schedule_job(q, job, due)
    assert ports.queue.process_scheduled_jobs(due) == 1
    assert ports.queue.scheduled_count() == 0
    assert ports.queue.queue_sizes_by_priority(q)["high"] == 1
    assert ports.store.find_job(job.id).status is JobStatus.PENDING
    taken = ports.queue.dequeue_job(q)
    assert taken.id == job.id and taken.status is JobStatus.PENDING
    assert ports.queue.process_scheduled_jobs(due + timedelta(hours=1)) == 0


def test_process_scheduled_jobs_moves_only_due_ones_soonest_first(ports):
    q = ports.queue_name()
    now = wall_now()
    later, sooner, future = (new_job(q, args={"n": n}) for n in range(3))
    ports.queue.schedule_job(q, later, now + timedelta(minutes=20))
    ports.queue.schedule_job(q, sooner, now + timedelta(minutes=10))
    ports.queue.schedule_job(q, future, now + timedelta(hours=5))
    assert ports.queue.scheduled_count() == 3
    assert ports.queue.process_scheduled_jobs(now + timedelta(hours=1)) == 2
    assert ports.queue.scheduled_count() == 1
    assert ports.queue.queue_size(q) == 2
    assert [ports.queue.dequeue_job(q).id for _ in range(2)] == [sooner.id, later.id]


def test_list_queues_includes_the_queues_used_sorted(ports):
    qb, qa = ports.queue_name("b"), ports.queue_name("a")
    assert qa not in ports.queue.list_queues() and qb not in ports.queue.list_queues()
    ports.queue.enqueue_job(qb, new_job(qb))
    ports.queue.schedule_job(qa, new_job(qa), wall_now() + timedelta(hours=1))
    names = ports.queue.list_queues()
    assert {qa, qb} <= set(names)
    assert names == sorted(names)


# -- JobRegistry ------------------------------------------------------------------------------


def _handler_a(**kwargs: Any) -> str:
    return "a"


def _handler_b(**kwargs: Any) -> str:
    return "b"


def test_register_then_get_handler(ports):
    job_type = unique_type("get")
    ports.registry.register_handler(job_type, _handler_a)
    assert ports.registry.get_handler(job_type) is _handler_a


def test_get_handler_of_an_unknown_type_is_none(ports):
    assert ports.registry.get_handler(unique_type("unknown")) is None


def test_register_handler_replaces_the_previous_one(ports):
    job_type = unique_type("replace")
    ports.registry.register_handler(job_type, _handler_a)
    assert ports.registry.get_handler(job_type) is _handler_a
    ports.registry.register_handler(job_type, _handler_b)
    assert ports.registry.get_handler(job_type) is _handler_b


def test_unregister_handler(ports):
    job_type = unique_type("unregister")
    ports.registry.register_handler(job_type, _handler_a)
    ports.registry.unregister_handler(job_type)
    assert ports.registry.get_handler(job_type) is None
    assert job_type not in ports.registry.list_job_types()
    ports.registry.unregister_handler(job_type)  # absent: no error


def test_unregister_then_register_again(ports):
    job_type = unique_type("again")
    ports.registry.register_handler(job_type, _handler_a)
    ports.registry.unregister_handler(job_type)
    ports.registry.register_handler(job_type, _handler_b)
    assert ports.registry.get_handler(job_type) is _handler_b


def test_list_job_types_is_sorted_and_holds_the_registered_types(ports):
    t_b, t_a = unique_type("b"), unique_type("a")
    assert t_a not in ports.registry.list_job_types()
    ports.registry.register_handler(t_b, _handler_b)
    ports.registry.register_handler(t_a, _handler_a)
    names = ports.registry.list_job_types()
    assert {t_a, t_b} <= set(names)
    assert names == sorted(names)


def test_a_handler_registered_on_one_registry_is_not_seen_by_another(ports):
    job_type = unique_type("isolated")
    ports.registry.register_handler(job_type, _handler_a)
    assert ports.registry.get_handler(job_type) is _handler_a
    other = ports.another().registry
    assert other.get_handler(job_type) is None
    assert job_type not in other.list_job_types()
