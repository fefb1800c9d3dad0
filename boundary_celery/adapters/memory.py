"""In-memory implementations of every port, for tests and development.

Same semantics as the Redis adapters: strict priority (critical..bulk) with FIFO per level,
scheduled jobs held until due, a bounded DLQ newest first, counters where
processed = succeeded + failed. Each component guards its state with one ``threading.Lock``;
only the queue calls the store while holding its lock (lock order queue -> store) and the
store never holds its lock while calling out, so no lock cycle can form. Adapters store and
move jobs; every decision comes from ``boundary_celery.core``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from boundary_celery.core import (
    DELIVERY_OK,
    CancelAction,
    Job,
    JobError,
    JobResult,
    JobStatsReport,
    JobStatus,
    Priority,
    QueueStats,
    RetryPolicy,
    Settlement,
    cancel_action,
    cancel_job,
    dead_letter_job,
    delivery_verdict,
    error_from_exception,
    interpret_handler_return,
    prepare_retry,
    settle,
    start_job,
)
from boundary_celery.ports import JobQueue

__all__ = [
    "DEFAULT_MAX_DLQ_SIZE",
    "MemoryBackend",
    "MemoryJobQueue",
    "MemoryJobRegistry",
    "MemoryJobStats",
    "MemoryJobStore",
    "MemoryWorker",
]

DEFAULT_MAX_DLQ_SIZE = 10_000

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _to_uuid(job_id: UUID | str) -> UUID | None:
    """``job_id`` as a UUID, or None when it is not one."""
    if isinstance(job_id, UUID):
        return job_id
    try:
        return UUID(str(job_id))
    except (ValueError, TypeError, AttributeError):
        return None


def _check_queue_name(queue_name: str) -> None:
    if not isinstance(queue_name, str) or not queue_name:
        raise ValueError(f"invalid queue name: {queue_name!r}")


class MemoryJobQueue:
    """Waiting jobs: one deque per (queue, priority); scheduled jobs in a heap.

    When a store is attached, enqueued and scheduled jobs are saved to it first, as the
    Redis queue keeps job data where the store reads it.
    """

    def __init__(self, store: MemoryJobStore | None = None) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, dict[Priority, deque[Job]]] = {}
        self._scheduled: list[tuple[datetime, int, str, Job]] = []
        self._seq = itertools.count()
        self.store = store

    def _levels(self, queue_name: str) -> dict[Priority, deque[Job]]:
        levels = self._waiting.get(queue_name)
        if levels is None:
            levels = {p: deque() for p in Priority.ordered()}
            self._waiting[queue_name] = levels
        return levels

    def enqueue_job(self, queue_name: str, job: Job) -> UUID:
        """Append ``job`` to its priority level of ``queue_name`` (job.queue follows)."""
        _check_queue_name(queue_name)
        if job.queue != queue_name:
            job = job.model_copy(update={"queue": queue_name})
        if self.store is not None:
            self.store.save_job(job)
        with self._lock:
            self._levels(queue_name)[job.priority].append(job)
        return job.id

    def dequeue_job(self, queue_name: str) -> Job | None:
        """Pop the oldest job of the most urgent non-empty level, or None."""
        return self.dequeue_any([queue_name])

    def dequeue_any(self, queue_names: Sequence[str]) -> Job | None:
        """Pop across several queues in strict priority order (queue order breaks ties)."""
        with self._lock:
            for priority in Priority.ordered():
                for name in queue_names:
                    levels = self._waiting.get(name)
                    if levels and levels[priority]:
                        return levels[priority].popleft()
        return None

    def schedule_job(self, queue_name: str, job: Job, execute_at: datetime) -> UUID:
        """Hold ``job`` until ``execute_at`` (job.queue and job.execute_at follow)."""
        _check_queue_name(queue_name)
        if job.queue != queue_name or job.execute_at != execute_at:
            job = job.model_copy(update={"queue": queue_name, "execute_at": execute_at})
        if self.store is not None:
            self.store.save_job(job)
        with self._lock:
            self._levels(queue_name)
            heapq.heappush(self._scheduled, (execute_at, next(self._seq), queue_name, job))
        return job.id

    def queue_size(self, queue_name: str) -> int:
        """Waiting jobs of ``queue_name``, every level; scheduled jobs not counted."""
        with self._lock:
            levels = self._waiting.get(queue_name)
            return sum(len(d) for d in levels.values()) if levels else 0

    def queue_sizes_by_priority(self, queue_name: str) -> dict[str, int]:
        """Waiting jobs per priority value, every level present."""
        with self._lock:
            levels = self._waiting.get(queue_name)
            return {p.value: len(levels[p]) if levels else 0 for p in Priority.ordered()}

    def scheduled_count(self) -> int:
        """Jobs held until their ``execute_at``."""
        with self._lock:
            return len(self._scheduled)

    def scheduled_jobs(self) -> list[tuple[datetime, Job]]:
        """(execute_at, job) of every scheduled job, soonest first (inspection helper)."""
        with self._lock:
            entries = sorted(self._scheduled)
        return [(at, job) for at, _, _, job in entries]

    def next_scheduled_at(self) -> datetime | None:
        """The earliest ``execute_at`` held, or None."""
        with self._lock:
            return self._scheduled[0][0] if self._scheduled else None

    def process_scheduled_jobs(self, now: datetime) -> int:
        """Move jobs due at ``now`` (execute_at <= now) to their queues, in due order.

        A job whose status is ``scheduled`` becomes ``pending`` (its record too, before it
        can be dequeued); a ``retrying`` job keeps its status, as in the Redis mover. A
        job whose record was cancelled meanwhile is dropped.
        """
        moved = 0
        with self._lock:
            while self._scheduled and self._scheduled[0][0] <= now:
                _, _, queue_name, job = heapq.heappop(self._scheduled)
                if self.store is not None:
                    due = self.store.mark_due(job, now)
                    if due is None:
                        continue
                    job = due
                elif job.status is JobStatus.SCHEDULED:
                    job = job.model_copy(update={"status": JobStatus.PENDING, "updated_at": now})
                self._levels(queue_name)[job.priority].append(job)
                moved += 1
        return moved

    def unschedule(self, job_id: UUID) -> bool:
        """Take ``job_id`` out of the scheduled jobs; True when it was there."""
        with self._lock:
            kept = [entry for entry in self._scheduled if entry[3].id != job_id]
            if len(kept) == len(self._scheduled):
                return False
            heapq.heapify(kept)
            self._scheduled = kept
            return True

    def list_queues(self) -> list[str]:
        """Every queue that has been enqueued or scheduled to, sorted."""
        with self._lock:
            return sorted(self._waiting)


class MemoryJobStore:
    """Job records by id and a bounded DLQ (most recent first)."""

    def __init__(
        self,
        queue: JobQueue | None = None,
        *,
        clock: Clock = _utcnow,
        max_dlq_size: int = DEFAULT_MAX_DLQ_SIZE,
    ) -> None:
        if max_dlq_size < 1:
            raise ValueError(f"max_dlq_size must be >= 1, got {max_dlq_size}")
        self._lock = threading.Lock()
        self._jobs: dict[UUID, Job] = {}
        self._dlq: OrderedDict[UUID, None] = OrderedDict()  # oldest first
        self._cancel_requested: set[UUID] = set()
        self.queue = queue
        self.clock = clock
        self.max_dlq_size = max_dlq_size

    def save_job(self, job: Job) -> None:
        """Insert or replace the record of ``job`` (a cancellation request goes with it)."""
        with self._lock:
            self._jobs[job.id] = job
            self._cancel_requested.discard(job.id)

    def find_job(self, job_id: UUID | str) -> Job | None:
        """The record of ``job_id``, or None."""
        uid = _to_uuid(job_id)
        if uid is None:
            return None
        with self._lock:
            return self._jobs.get(uid)

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        """Dead-lettered jobs, most recent first."""
        if limit <= 0:
            return []
        with self._lock:
            ids = list(itertools.islice(reversed(self._dlq), limit))
            return [self._jobs[i] for i in ids]

    def dead_letter(self, job: Job) -> None:
        """Save ``job`` and make it the newest DLQ entry; the oldest entries past the bound go."""
        with self._lock:
            self._jobs[job.id] = job
            self._dlq.pop(job.id, None)
            self._dlq[job.id] = None
            while len(self._dlq) > self.max_dlq_size:
                self._dlq.popitem(last=False)

    def retry_job(self, job_id: UUID | str, reset_retries: bool = False) -> Job | None:
        """Take a job out of the DLQ, prepare it (core.prepare_retry) and enqueue it now."""
        queue = self.queue
        if queue is None:
            raise RuntimeError("MemoryJobStore.retry_job needs a queue (store.queue)")
        uid = _to_uuid(job_id)
        if uid is None:
            return None
        with self._lock:
            if uid not in self._dlq:
                return None
            retried = prepare_retry(self._jobs[uid], now=self.clock(), reset_retries=reset_retries)
            del self._dlq[uid]
            self._jobs[uid] = retried
            self._cancel_requested.discard(uid)
        queue.enqueue_job(retried.queue, retried)
        return retried

    def purge_dlq(self, job_id: UUID | str | None = None) -> int:
        """Delete one dead-lettered job (or all when ``job_id`` is None), entry and record."""
        with self._lock:
            if job_id is None:
                ids = list(self._dlq)
            else:
                uid = _to_uuid(job_id)
                ids = [uid] if uid is not None and uid in self._dlq else []
            for uid in ids:
                del self._dlq[uid]
                self._jobs.pop(uid, None)
                self._cancel_requested.discard(uid)
            return len(ids)

    def dlq_size(self) -> int:
        """Number of jobs in the DLQ."""
        with self._lock:
            return len(self._dlq)

    def cancel(self, job_id: UUID | str, now: datetime, *,
               stopped: bool = False) -> tuple[CancelAction, Job] | None:
        """Cancel a job as ``core.cancel_action`` decides (as the Redis store's ``cancel``):
        the action and the job after it; None for an unknown id."""
        uid = _to_uuid(job_id)
        if uid is None:
            return None
        with self._lock:
            job = self._jobs.get(uid)
            if job is None:
                return None
            action = cancel_action(job.status, stopped=stopped)
            if action is CancelAction.CANCEL:
                job = self._jobs[uid] = cancel_job(job, now)
            elif action is CancelAction.REQUEST:
                self._cancel_requested.add(uid)
        if action is CancelAction.CANCEL and isinstance(self.queue, MemoryJobQueue):
            self.queue.unschedule(uid)
        return action, job

    def cancel_job(self, job_id: UUID | str, now: datetime | None = None) -> Job | None:
        """Cancel a job (see :meth:`cancel`); the job after it, None for an unknown id."""
        done = self.cancel(job_id, now or self.clock())
        return done[1] if done is not None else None

    def cancel_requested(self, job_id: UUID | str) -> bool:
        """Whether cancelling ``job_id`` was requested (or it is cancelled already)."""
        uid = _to_uuid(job_id)
        if uid is None:
            return False
        with self._lock:
            job = self._jobs.get(uid)
            return uid in self._cancel_requested or (
                job is not None and job.status is JobStatus.CANCELLED)

    def mark_due(self, job: Job, now: datetime) -> Job | None:
        """A scheduled ``job`` joining its queue: pending (record too) when it was
        scheduled; None when its record was cancelled meanwhile (the queue drops it)."""
        with self._lock:
            stored = self._jobs.get(job.id)
            if stored is not None and stored.status is JobStatus.CANCELLED:
                return None
            if job.status is JobStatus.SCHEDULED:
                job = job.model_copy(update={"status": JobStatus.PENDING, "updated_at": now})
                self._jobs[job.id] = job
                self._cancel_requested.discard(job.id)
            return job


@dataclass
class _Counters:
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    duration_sum_ms: float = 0.0
    duration_count: int = 0

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    @property
    def avg_duration_ms(self) -> float:
        return self.duration_sum_ms / self.duration_count if self.duration_count else 0.0


class MemoryJobStats:
    """Per-queue counters; sizes, DLQ size and scheduled figures read from queue and store."""

    def __init__(
        self, queue: MemoryJobQueue, store: MemoryJobStore, *, clock: Clock = _utcnow
    ) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, _Counters] = {}
        self._active_workers = 0
        self.queue = queue
        self.store = store
        self.clock = clock

    def set_active_workers(self, count: int) -> None:
        """Set the gauge reported as ``active_workers``."""
        with self._lock:
            self._active_workers = max(0, count)

    def record_outcome(self, job: Job) -> None:
        """Count a completed (succeeded) or failed job and its duration; other statuses ignored."""
        status = JobStatus(job.status)
        if status not in (JobStatus.COMPLETED, JobStatus.FAILED):
            return
        with self._lock:
            counters = self._counters.setdefault(job.queue, _Counters())
            if status is JobStatus.COMPLETED:
                counters.succeeded += 1
            else:
                counters.failed += 1
            if job.duration_ms is not None:
                counters.duration_sum_ms += job.duration_ms
                counters.duration_count += 1

    def record_retry(self, job: Job) -> None:
        """Count one automatic retry of ``job`` in its queue."""
        with self._lock:
            self._counters.setdefault(job.queue, _Counters()).retried += 1

    def queue_stats(self, queue_name: str) -> QueueStats:
        """Size and counters of ``queue_name`` (zeros for an unknown queue)."""
        by_priority = self.queue.queue_sizes_by_priority(queue_name)
        with self._lock:
            c = self._counters.get(queue_name, _Counters())
            return QueueStats(
                queue_name=queue_name,
                size=sum(by_priority.values()),
                processed_total=c.processed,
                succeeded_total=c.succeeded,
                failed_total=c.failed,
                retried_total=c.retried,
                avg_duration_ms=c.avg_duration_ms,
                size_by_priority=by_priority,
            )

    def _scheduler_lag_ms(self) -> float:
        due = self.queue.next_scheduled_at()
        if due is None:
            return 0.0
        return max(0.0, (self.clock() - due).total_seconds() * 1000.0)

    def job_stats(self) -> JobStatsReport:
        """Totals over every queue, plus workers, DLQ size and scheduler figures."""
        with self._lock:
            known = set(self._counters)
            active = self._active_workers
        queues = [self.queue_stats(n) for n in sorted(known | set(self.queue.list_queues()))]
        return JobStatsReport(
            total_processed=sum(q.processed_total for q in queues),
            total_succeeded=sum(q.succeeded_total for q in queues),
            total_failed=sum(q.failed_total for q in queues),
            total_retried=sum(q.retried_total for q in queues),
            active_workers=active,
            dlq_size=self.store.dlq_size(),
            scheduled_count=self.queue.scheduled_count(),
            scheduler_lag_ms=self._scheduler_lag_ms(),
            queues=queues,
        )


class MemoryJobRegistry:
    """Job type -> handler map."""

    def __init__(self, handlers: Iterable[tuple[str, Callable[..., Any]]] = ()) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[..., Any]] = {}
        for job_type, handler in handlers:
            self.register_handler(job_type, handler)

    def register_handler(self, job_type: str, handler: Callable[..., Any]) -> None:
        """Register (or replace) the handler of ``job_type``."""
        if not isinstance(job_type, str) or not job_type.strip():
            raise ValueError(f"invalid job type: {job_type!r}")
        if not callable(handler):
            raise TypeError(f"handler for {job_type!r} is not callable")
        with self._lock:
            self._handlers[job_type] = handler

    def unregister_handler(self, job_type: str) -> None:
        """Forget the handler of ``job_type`` (no error when absent)."""
        with self._lock:
            self._handlers.pop(job_type, None)

    def get_handler(self, job_type: str) -> Callable[..., Any] | None:
        """The handler of ``job_type``, or None."""
        with self._lock:
            return self._handlers.get(job_type)

    def list_job_types(self) -> list[str]:
        """Registered job types, sorted."""
        with self._lock:
            return sorted(self._handlers)


@dataclass
class MemoryBackend:
    """One queue, store, stats and registry wired together."""

    clock: InitVar[Clock | None] = None
    max_dlq_size: InitVar[int] = DEFAULT_MAX_DLQ_SIZE
    queue: MemoryJobQueue = field(init=False)
    store: MemoryJobStore = field(init=False)
    stats: MemoryJobStats = field(init=False)
    registry: MemoryJobRegistry = field(init=False)

    def __post_init__(self, clock: Clock | None, max_dlq_size: int) -> None:
        now = clock or _utcnow
        self.store = MemoryJobStore(clock=now, max_dlq_size=max_dlq_size)
        self.queue = MemoryJobQueue(store=self.store)
        self.store.queue = self.queue
        self.stats = MemoryJobStats(self.queue, self.store, clock=now)
        self.registry = MemoryJobRegistry()


class MemoryWorker:
    """A synchronous worker for development and demos; every decision comes from core."""

    def __init__(
        self,
        backend: MemoryBackend,
        queues: list[str],
        policy: RetryPolicy,
        clock: Clock,
        rand: Callable[[], float] | None = None,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.backend = backend
        self.queues = list(queues)
        self.policy = policy
        self.clock = clock
        self.rand = rand

    def run_once(self) -> Job | None:
        """Move due scheduled jobs, run the most urgent waiting job; return it settled."""
        b = self.backend
        now = self.clock()
        b.queue.process_scheduled_jobs(now)
        job = b.queue.dequeue_any(self.queues)
        if job is None:
            return None
        stored = b.store.find_job(job.id)
        if stored is not None and delivery_verdict(
                stored.status, stored.retry_count, job.retry_count) != DELIVERY_OK:
            return stored  # cancelled, completed or a stale copy: skipped, as begin.lua does
        handler = b.registry.get_handler(job.job_type)
        if handler is None:
            error = JobError(
                message=f"no handler registered for job type {job.job_type!r}",
                type="NoHandlerError",
            )
            return self._apply(Settlement(dead_letter_job(job, error, now), None, True), now)
        running = start_job(job, now)
        b.store.save_job(running)
        outcome: JobResult
        try:
            outcome = interpret_handler_return(handler(**running.args))
        except Exception as exc:
            outcome = JobResult(False, None, error_from_exception(exc))
        settled_at = self.clock()
        return self._apply(settle(running, outcome, settled_at, self.policy, self.rand), settled_at)

    def _apply(self, settlement: Settlement, at: datetime) -> Job:
        b = self.backend
        job = settlement.job
        if settlement.dead_lettered:
            b.store.dead_letter(job)
            b.stats.record_outcome(job)
        elif settlement.retry_delay_ms is not None:
            b.store.save_job(job)
            b.stats.record_retry(job)
            b.queue.schedule_job(
                job.queue, job, at + timedelta(milliseconds=settlement.retry_delay_ms)
            )
        else:
            b.store.save_job(job)
            b.stats.record_outcome(job)
        return job

    def run_until_idle(self, max_jobs: int = 10_000) -> int:
        """Run jobs until none is waiting or due (or ``max_jobs``); return how many ran."""
        count = 0
        while count < max_jobs and self.run_once() is not None:
            count += 1
        return count
