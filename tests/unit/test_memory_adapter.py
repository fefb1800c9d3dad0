"""The in-memory adapter: the upstream library's queue, store, stats and worker cases."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from boundary_celery.adapters.memory import (
    MemoryBackend,
    MemoryJobQueue,
    MemoryJobRegistry,
    MemoryJobStats,
    MemoryJobStore,
    MemoryWorker,
)
from boundary_celery.core import Job, JobInput, JobStatus, Priority, RetryPolicy, create_job
from boundary_celery.ports import JobQueue, JobRegistry, JobStats, JobStore

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)


def make_job(job_type: str = "test-job", **fields: Any) -> Job:
    return create_job(JobInput.parse({"job_type": job_type, **fields}), uuid4(), now=T0)


def make_worker(
    backend: MemoryBackend, clock: FakeClock, queues: list[str] | None = None
) -> MemoryWorker:
    return MemoryWorker(backend, queues or ["default"], RetryPolicy(), clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock=clock)


def test_memory_classes_satisfy_their_protocols(backend: MemoryBackend) -> None:
    assert isinstance(backend.queue, JobQueue)
    assert isinstance(backend.store, JobStore)
    assert isinstance(backend.stats, JobStats)
    assert isinstance(backend.registry, JobRegistry)
    assert isinstance(MemoryJobQueue(), JobQueue)
    assert isinstance(MemoryJobStore(), JobStore)
    assert isinstance(MemoryJobStats(MemoryJobQueue(), MemoryJobStore()), JobStats)
    assert isinstance(MemoryJobRegistry(), JobRegistry)
    assert not isinstance(MemoryJobRegistry(), JobQueue)


def test_enqueue_and_dequeue(backend: MemoryBackend) -> None:
    queue = backend.queue
    new_job = make_job("test-job", args={"value": 42})

    assert queue.enqueue_job("default", new_job) == new_job.id
    assert queue.queue_size("default") == 1

    dequeued = queue.dequeue_job("default")
    assert dequeued is not None
    assert dequeued.id == new_job.id
    assert dequeued.job_type == "test-job"
    assert dequeued.args["value"] == 42
    assert dequeued.status == JobStatus.PENDING

    assert queue.queue_size("default") == 0
    assert queue.dequeue_job("default") is None
    assert queue.dequeue_job("never-used") is None
    assert queue.queue_size("never-used") == 0


def test_enqueue_saves_the_job_in_the_store(backend: MemoryBackend) -> None:
    job = make_job()
    backend.queue.enqueue_job("emails", job)
    found = backend.store.find_job(str(job.id))
    assert found is not None and found.queue == "emails"
    assert backend.store.find_job(uuid4()) is None
    assert backend.store.find_job("not-a-uuid") is None
    assert backend.queue.list_queues() == ["emails"]


def test_strict_priority_across_all_levels_fifo_within_each() -> None:
    queue = MemoryJobQueue()
    levels = [p.value for p in Priority.ordered()]
    assert levels == ["critical", "high", "normal", "low", "bulk"]
    jobs = [make_job(args={"n": n}, priority=level) for level in levels for n in range(5)]
    shuffled = jobs[:]
    random.Random(7).shuffle(shuffled)
    for job in shuffled:
        queue.enqueue_job("default", job)
    assert queue.queue_sizes_by_priority("default") == dict.fromkeys(levels, 5)

    out: list[Job] = []
    while (taken := queue.dequeue_job("default")) is not None:
        out.append(taken)

    assert len(out) == len(jobs)
    assert [j.priority.value for j in out] == [lv for lv in levels for _ in range(5)]
    for level in levels:
        enqueued = [j.id for j in shuffled if j.priority.value == level]
        assert [j.id for j in out if j.priority.value == level] == enqueued


def test_scheduled_jobs_not_counted_until_moved_and_moved_only_when_due() -> None:
    queue = MemoryJobQueue()
    early, late = make_job(priority="high"), make_job()
    queue.schedule_job("default", late, T0 + timedelta(seconds=60))
    queue.schedule_job("default", early, T0 + timedelta(seconds=10))

    assert queue.queue_size("default") == 0
    assert queue.scheduled_count() == 2
    assert queue.process_scheduled_jobs(T0) == 0
    assert queue.process_scheduled_jobs(T0 + timedelta(seconds=9, microseconds=999_999)) == 0
    assert queue.queue_size("default") == 0

    assert queue.process_scheduled_jobs(T0 + timedelta(seconds=10)) == 1
    assert queue.queue_size("default") == 1
    assert queue.scheduled_count() == 1
    moved = queue.dequeue_job("default")
    assert moved is not None and moved.id == early.id and moved.priority == Priority.HIGH

    assert queue.process_scheduled_jobs(T0 + timedelta(hours=1)) == 1
    assert queue.scheduled_count() == 0
    assert queue.queue_size("default") == 1


def test_a_scheduled_job_becomes_pending_when_moved_and_stats_show_the_lag(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    due = T0 + timedelta(seconds=5)
    job = make_job(execute_at=due)
    assert job.status == JobStatus.SCHEDULED
    backend.queue.schedule_job("default", job, due)
    stored = backend.store.find_job(job.id)
    assert stored is not None and stored.status == JobStatus.SCHEDULED

    report = backend.stats.job_stats()
    assert (report.scheduled_count, report.scheduler_lag_ms) == (1, 0.0)
    assert report.queues[0].size == 0
    clock.advance(7000)
    assert backend.stats.job_stats().scheduler_lag_ms == pytest.approx(2000.0)
    backend.stats.set_active_workers(2)
    assert backend.stats.job_stats().active_workers == 2

    assert backend.queue.process_scheduled_jobs(clock.now) == 1
    stored = backend.store.find_job(job.id)
    assert stored is not None and stored.status == JobStatus.PENDING
    moved = backend.queue.dequeue_job("default")
    assert moved is not None and moved.status == JobStatus.PENDING
    assert backend.stats.job_stats().scheduler_lag_ms == 0.0


def _always_fail(**_: Any) -> None:
    raise RuntimeError("boom")


def test_dlq_is_newest_first_and_bounded(clock: FakeClock) -> None:
    backend = MemoryBackend(clock=clock, max_dlq_size=3)
    backend.registry.register_handler("fails", _always_fail)
    worker = make_worker(backend, clock)
    jobs = [make_job("fails", max_retries=0) for _ in range(4)]
    for job in jobs:
        backend.queue.enqueue_job("default", job)
        assert worker.run_once() is not None
        clock.advance(1)

    failed = backend.store.failed_jobs()
    assert [j.id for j in failed] == [j.id for j in reversed(jobs[1:])]
    assert all(j.status == JobStatus.FAILED for j in failed)
    assert [j.id for j in backend.store.failed_jobs(limit=1)] == [jobs[-1].id]
    assert backend.store.failed_jobs(limit=0) == []
    assert backend.store.dlq_size() == 3

    assert backend.store.purge_dlq(jobs[-1].id) == 1
    assert backend.store.purge_dlq(jobs[-1].id) == 0
    assert backend.store.purge_dlq() == 2
    assert backend.store.dlq_size() == 0


def test_retry_of_a_dlq_job_runs_again_at_its_own_queue_and_priority(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    calls: list[dict[str, Any]] = []
    fail = True

    def handler(**args: Any) -> dict[str, Any]:
        calls.append(args)
        if fail:
            raise ValueError("bad input")
        return {"ok": True}

    backend.registry.register_handler("flaky", handler)
    job = make_job("flaky", args={"x": 1}, priority="low", queue="reports", max_retries=0)
    backend.queue.enqueue_job("reports", job)
    worker = make_worker(backend, clock, ["reports"])
    settled = worker.run_once()
    assert settled is not None and settled.status == JobStatus.FAILED
    assert settled.error is not None and settled.error.type == "ValueError"

    assert backend.store.retry_job(uuid4()) is None
    assert backend.store.retry_job("garbage") is None

    retried = backend.store.retry_job(str(job.id))
    assert retried is not None
    assert retried.status == JobStatus.PENDING
    assert (retried.queue, retried.priority) == ("reports", Priority.LOW)
    assert backend.store.dlq_size() == 0
    assert backend.queue.queue_sizes_by_priority("reports")["low"] == 1
    assert backend.store.retry_job(job.id) is None  # no longer in the DLQ

    fail = False
    done = worker.run_once()
    assert done is not None and done.id == job.id
    assert done.status == JobStatus.COMPLETED and done.result == {"ok": True}
    assert calls == [{"x": 1}, {"x": 1}]


def test_a_retried_dlq_job_failing_once_more_returns_to_the_dlq(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    backend.registry.register_handler("fails", _always_fail)
    job = make_job("fails", max_retries=1)
    backend.queue.enqueue_job("default", job)
    worker = make_worker(backend, clock)
    worker.run_once()
    clock.advance(1000)
    assert worker.run_once() is not None
    assert backend.store.dlq_size() == 1

    assert backend.store.retry_job(job.id) is not None
    settled = worker.run_once()
    assert settled is not None and settled.status == JobStatus.FAILED
    assert backend.store.dlq_size() == 1
    assert backend.queue.scheduled_count() == 0


def test_stats_after_a_worker_run(backend: MemoryBackend, clock: FakeClock) -> None:
    def ok(ms: int) -> int:
        clock.advance(ms)
        return ms

    def bad(ms: int) -> None:
        clock.advance(ms)
        raise RuntimeError("nope")

    backend.registry.register_handler("ok", ok)
    backend.registry.register_handler("bad", bad)
    for ms in (100, 300):
        backend.queue.enqueue_job("default", make_job("ok", args={"ms": ms}))
    backend.queue.enqueue_job("default", make_job("bad", args={"ms": 200}, max_retries=0))
    backend.queue.enqueue_job("emails", make_job("ok", args={"ms": 50}))
    backend.queue.enqueue_job("emails", make_job("ok", args={"ms": 1}, priority="bulk"))

    worker = make_worker(backend, clock, ["default"])
    assert worker.run_until_idle() == 3

    default = backend.stats.queue_stats("default")
    assert default.size == 0
    assert (default.succeeded_total, default.failed_total) == (2, 1)
    assert default.processed_total == default.succeeded_total + default.failed_total == 3
    assert default.avg_duration_ms == pytest.approx(200.0)

    report = backend.stats.job_stats()
    assert report.total_processed == 3
    assert report.total_succeeded == 2
    assert report.total_failed == 1
    assert report.total_retried == 0
    assert report.dlq_size == 1
    assert report.scheduled_count == 0
    by_name = {q.queue_name: q for q in report.queues}
    assert set(by_name) == {"default", "emails"}
    assert by_name["emails"].size == 2
    assert by_name["emails"].size_by_priority["bulk"] == 1
    assert by_name["emails"].processed_total == 0

    unknown = backend.stats.queue_stats("nowhere")
    assert (unknown.size, unknown.processed_total, unknown.avg_duration_ms) == (0, 0, 0.0)


def test_worker_retries_with_backoff_then_completes(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    attempts: list[int] = []

    def flaky(n: int) -> dict[str, Any]:
        attempts.append(n)
        if len(attempts) <= 2:
            return {"success": False, "error": {"message": "timeout", "type": "NetworkError"}}
        return {"success": True, "result": n * 2}

    backend.registry.register_handler("flaky", flaky)
    job = make_job("flaky", args={"n": 21}, priority="high")
    backend.queue.enqueue_job("default", job)
    worker = make_worker(backend, clock)

    first = worker.run_once()
    assert first is not None and first.status == JobStatus.RETRYING and first.retry_count == 1
    [(at1, held1)] = backend.queue.scheduled_jobs()
    assert at1 == T0 + timedelta(milliseconds=1000)
    assert held1.priority == Priority.HIGH
    assert backend.queue.queue_size("default") == 0

    clock.advance(999)
    assert worker.run_once() is None  # not due yet
    clock.advance(1)
    second = worker.run_once()
    assert second is not None and second.status == JobStatus.RETRYING
    [(at2, _)] = backend.queue.scheduled_jobs()
    assert at2 == clock.now + timedelta(milliseconds=2000)

    clock.advance(2000)
    final = worker.run_once()
    assert final is not None
    assert final.status == JobStatus.COMPLETED
    assert final.retry_count == 2
    assert final.result == 42
    assert attempts == [21, 21, 21]
    assert backend.store.find_job(job.id) == final
    assert backend.stats.job_stats().total_retried == 2
    assert backend.stats.job_stats().total_processed == 1


def test_always_failing_job_dead_lettered_after_max_retries_plus_one_attempts(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    attempts = 0

    def boom() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("down")

    backend.registry.register_handler("boom", boom)
    job = make_job("boom", max_retries=3)
    backend.queue.enqueue_job("default", job)
    worker = make_worker(backend, clock)

    for _ in range(10):
        worker.run_until_idle()
        clock.advance(60_000)

    assert attempts == 4
    [dead] = backend.store.failed_jobs()
    assert dead.id == job.id
    assert dead.status == JobStatus.FAILED
    assert dead.retry_count == 4
    assert dead.error is not None and dead.error.type == "ConnectionError"
    assert backend.queue.scheduled_count() == 0
    stats = backend.stats.job_stats()
    assert (stats.total_failed, stats.total_retried, stats.total_processed) == (1, 3, 1)


def test_unknown_job_type_is_dead_lettered_with_no_handler_error(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    job = make_job("nobody-handles-this")
    backend.queue.enqueue_job("default", job)
    settled = make_worker(backend, clock).run_once()
    assert settled is not None
    assert settled.status == JobStatus.FAILED
    assert settled.error is not None and settled.error.type == "NoHandlerError"
    assert [j.id for j in backend.store.failed_jobs()] == [job.id]
    assert backend.queue.scheduled_count() == 0


def test_worker_takes_the_most_urgent_job_across_its_queues(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[str] = []
    backend.registry.register_handler("t", lambda tag: seen.append(tag))
    backend.queue.enqueue_job("a", make_job("t", args={"tag": "a-high"}, priority="high"))
    backend.queue.enqueue_job("b", make_job("t", args={"tag": "b-critical"}, priority="critical"))
    backend.queue.enqueue_job("a", make_job("t", args={"tag": "a-bulk"}, priority="bulk"))
    backend.queue.enqueue_job("c", make_job("t", args={"tag": "c-critical"}, priority="critical"))
    assert make_worker(backend, clock, ["a", "b"]).run_until_idle() == 3
    assert seen == ["b-critical", "a-high", "a-bulk"]
    assert backend.queue.queue_size("c") == 1


def test_registry() -> None:
    registry = MemoryJobRegistry()
    handler: Callable[..., Any] = lambda **_: None  # noqa: E731
    registry.register_handler("b", handler)
    registry.register_handler("a", handler)
    assert registry.list_job_types() == ["a", "b"]
    assert registry.get_handler("a") is handler
    registry.unregister_handler("a")
    registry.unregister_handler("a")
    assert registry.get_handler("a") is None
    with pytest.raises(TypeError):
        registry.register_handler("c", "not callable")  # type: ignore[arg-type]


def test_concurrent_enqueues_and_dequeues_lose_and_duplicate_nothing() -> None:
    queue = MemoryJobQueue()
    jobs = [make_job(priority=Priority.ordered()[n % 5].value) for n in range(100)]
    barrier = threading.Barrier(100)

    def enqueue(job: Job) -> None:
        barrier.wait()
        queue.enqueue_job("default", job)

    threads = [threading.Thread(target=enqueue, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert queue.queue_size("default") == 100

    taken: list[UUID | None] = []
    taken_lock = threading.Lock()
    barrier50 = threading.Barrier(50)

    def dequeue() -> None:
        barrier50.wait()
        job = queue.dequeue_job("default")
        with taken_lock:
            taken.append(job.id if job is not None else None)

    threads = [threading.Thread(target=dequeue) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert None not in taken
    assert len(taken) == len(set(taken)) == 50
    assert queue.queue_size("default") == 50
    rest: list[UUID | None] = []
    while (job := queue.dequeue_job("default")) is not None:
        rest.append(job.id)
    assert sorted(map(str, taken + rest)) == sorted(str(j.id) for j in jobs)
