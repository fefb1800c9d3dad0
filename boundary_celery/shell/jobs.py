"""``Jobs``: the job system installed on one Celery app.

It implements the ports (JobQueue, JobStore, JobStats, JobRegistry) over Celery and the
Redis job store. Publishing goes through Celery (``send_task``), so routing, task events
and Flower work as usual; the boundary transport writes the job record in the same round
trip and diverts delayed messages to the scheduled set.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from boundary_celery.adapters.redis_keys import PRIORITY_STEPS
from boundary_celery.adapters.redis_records import flatten, job_fields, to_ms
from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import Job, JobInput, JobStatus, create_job, prepare_retry
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.stats import JobStatsReport, QueueStats, average_duration
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell import headers as H
from boundary_celery.shell.context import TenantHook

if TYPE_CHECKING:
    from celery import Celery

#: Fields cleared on a record when a dead job is queued again.
_RETRY_CLEARS = ("started_at", "completed_at", "result", "duration_ms", "execute_at")


def utcnow() -> datetime:
    """The shell's clock (the core never reads one)."""
    return datetime.now(UTC)


def policy_from_settings(settings: BoundarySettings) -> RetryPolicy:
    """The default retry policy configured in ``[retry]``."""
    cfg = settings.retry
    if cfg.preset:
        return RetryPolicy.preset(cfg.preset)
    return RetryPolicy.from_config(
        {
            "backoff_strategy": cfg.backoff_strategy,
            "initial_delay_ms": cfg.initial_delay_ms,
            "max_delay_ms": cfg.max_delay_ms,
            "jitter": cfg.jitter,
            "schedule": tuple(cfg.schedule),
        }
    )


def message_meta(
    job: Job, no_handler_since: int | None = None, defaulted: Iterable[str] = ()
) -> dict[str, Any]:
    """The compact ``boundary`` header the worker reads back (m is the job's metadata).

    ``defaulted`` names fields ("mr", "rp") the publisher only guessed because it does
    not know the job type: the worker's own task definition replaces them.
    """
    meta: dict[str, Any] = {
        "q": job.queue,
        "p": job.priority.value,
        "rc": job.retry_count,
        "mr": job.max_retries,
    }
    if job.tenant_id is not None:
        meta["t"] = job.tenant_id
    if job.metadata:
        meta["m"] = job.metadata
    if job.retry_policy is not None:
        meta["rp"] = job.retry_policy.model_dump(mode="json")
    if no_handler_since is not None:
        meta["nh"] = no_handler_since
    defaulted = sorted(defaulted)
    if defaulted:
        meta["d"] = defaulted
    return meta


class Jobs:
    """Boundary's job API for one Celery app (returned by :func:`boundary_celery.install`)."""

    def __init__(
        self,
        app: Celery,
        settings: BoundarySettings,
        store: RedisJobStore,
        *,
        tenant_hook: TenantHook | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.tenant_hook = tenant_hook
        self.rand = rand
        self.default_policy = policy_from_settings(settings)

    # -- enqueueing (JobQueue) ------------------------------------------------------

    def build_job(self, job_type: str, args: Mapping[str, Any] | None = None,
                  **options: Any) -> Job:
        """Validate an enqueue request into a new job; raises JobValidationError."""
        return self.prepare(job_type, args, **options)[0]

    def prepare(
        self,
        job_type: str,
        args: Mapping[str, Any] | None = None,
        *,
        priority: Priority | str | int | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        execute_at: datetime | None = None,
        retry_policy: RetryPolicy | Mapping[str, Any] | str | None = None,
        job_id: UUID | str | None = None,
        now: datetime | None = None,
    ) -> tuple[Job, tuple[str, ...]]:
        """The new job and the fields only defaulted here (job type unknown locally)."""
        task = self.app.tasks.get(job_type)
        defaulted: list[str] = []
        if task is None and max_retries is None:
            defaulted.append("mr")
        if task is None and retry_policy is None:
            defaulted.append("rp")
        data: dict[str, Any] = {
            "job_type": job_type,
            "args": dict(args) if args is not None else {},
            "priority": priority if priority is not None
            else getattr(task, "boundary_priority", Priority.NORMAL),
            "queue": queue or getattr(task, "boundary_queue", "default"),
            "max_retries": max_retries if max_retries is not None
            else _task_max_retries(task, self.settings.retry.max_retries),
            "metadata": dict(metadata) if metadata is not None else {},
            "tenant_id": tenant_id,
            "execute_at": execute_at,
        }
        policy = _policy(retry_policy) or getattr(task, "boundary_retry_policy", None)
        if policy is not None:
            data["retry_policy"] = policy
        spec = JobInput.parse(data)
        self.check_queue(spec.queue)
        job = create_job(spec, job_id if job_id is not None else uuid.uuid4(), now or utcnow())
        return job, tuple(defaulted)

    def check_queue(self, queue: str) -> None:
        """Reject a queue that is not declared (when queues are declared in settings)."""
        declared = self.settings.store.declared_queues
        if declared is not None and queue not in declared:
            raise JobValidationError(
                "queue", queue, f"not a declared queue (declared: {', '.join(declared)})"
            )

    def enqueue(self, job_type: str, args: Mapping[str, Any] | None = None, **options: Any) -> str:
        """Validate and publish a job; returns its id. Options as :meth:`build_job`."""
        job, defaulted = self.prepare(job_type, args, **options)
        self.publish(job, defaulted=defaulted)
        return str(job.id)

    def schedule(
        self, job_type: str, args: Mapping[str, Any] | None = None, *, execute_at: datetime,
        **options: Any,
    ) -> str:
        """Publish a job that must not start before ``execute_at``."""
        return self.enqueue(job_type, args, execute_at=execute_at, **options)

    def enqueue_job(self, queue_name: str, job: Job) -> UUID:
        """Port form: publish an already created job on ``queue_name``."""
        self.check_queue(queue_name)
        job = job.model_copy(update={"queue": queue_name})
        self.publish(job)
        return job.id

    def schedule_job(self, queue_name: str, job: Job, execute_at: datetime) -> UUID:
        """Port form: publish ``job`` on ``queue_name`` to run at ``execute_at``."""
        return self.enqueue_job(queue_name, job.model_copy(update={"execute_at": execute_at}))

    def publish(self, job: Job, **header_options: Any) -> None:
        """Send ``job`` as a Celery task message; the record is written with it.
        ``header_options`` as :meth:`message_headers` (by default the whole record, due
        at ``job.execute_at``)."""
        headers = self.message_headers(job, **header_options)
        self.app.send_task(
            job.job_type,
            kwargs=job.args,
            task_id=str(job.id),
            queue=job.queue,
            routing_key=job.queue,
            priority=job.priority.rank,
            headers=headers,
        )

    @staticmethod
    def message_headers(
        job: Job,
        *,
        fields: Mapping[str, Any] | None = None,
        due: datetime | None = None,
        counter: str = "",
        clear: Iterable[str] = (),
        no_handler_since: int | None = None,
        defaulted: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The boundary headers of ``job``'s message (read by the worker and the transport)."""
        due = due if due is not None else job.execute_at
        headers: dict[str, Any] = {
            H.META: message_meta(job, no_handler_since, defaulted),
            H.RECORD: flatten(fields if fields is not None else job_fields(job)),
        }
        if due is not None and due > utcnow():
            headers[H.DUE] = to_ms(due)
        if counter:
            headers[H.COUNTER] = counter
        clear = list(clear)
        if clear:
            headers[H.CLEAR] = clear
        return headers

    def enqueue_many(self, items: Iterable[Mapping[str, Any]], batch_size: int = 500) -> list[str]:
        """Validate every item, then publish them pipelined; returns the job ids in order.
        Items are ``{"job_type": ..., "args": {...}, **options of enqueue}``."""
        from boundary_celery.shell.bulk import enqueue_many

        return enqueue_many(self, list(items), batch_size=batch_size)

    def dequeue_job(self, queue_name: str) -> Job | None:
        """Port form: take the most urgent waiting job of ``queue_name`` off the broker
        (the caller runs it; a Celery worker normally does this)."""
        raw = self.store.pop_message(queue_name)
        if raw is None:
            return None
        job_id = json.loads(raw)["headers"]["id"]
        return self.store.find_job(str(job_id))

    def queue_size(self, queue_name: str) -> int:
        """Jobs waiting in ``queue_name`` at every level (scheduled ones not counted)."""
        return sum(self.store.queue_depths([queue_name])[queue_name])

    def queue_sizes_by_priority(self, queue_name: str) -> dict[str, int]:
        """Waiting jobs of ``queue_name`` per level."""
        depths = self.store.queue_depths([queue_name])[queue_name]
        return {Priority.from_rank(step).value: n
                for step, n in zip(PRIORITY_STEPS, depths, strict=True)}

    def scheduled_count(self) -> int:
        return self.store.scheduled_count()

    def process_scheduled_jobs(self, now: datetime | None = None) -> int:
        """Publish every scheduled job due at ``now``; returns how many moved."""
        batch = self.settings.scheduler.batch_size
        now_ms = to_ms(now or utcnow())
        total = 0
        while True:
            moved = self.store.move_due(now_ms, batch)
            total += moved
            if moved < batch:
                return total

    def list_queues(self) -> list[str]:
        return self.store.list_queues()

    # -- the store (JobStore) ---------------------------------------------------------

    def save_job(self, job: Job) -> None:
        """Port form: write ``job``'s record as it is."""
        self.store.save(str(job.id), job_fields(job))

    def dead_letter(self, job: Job) -> None:
        """Port form: put an already failed ``job`` in the DLQ (counted by record_outcome,
        as in the other adapters)."""
        now = job.completed_at or utcnow()
        self.store.dead_letter(str(job.id), job.queue, to_ms(now), job_fields(job), count=False)

    def record_outcome(self, job: Job) -> None:
        """Port form: count a terminal outcome (completed or failed) and its duration.
        (Jobs run by workers are counted by the store's scripts already.)"""
        if job.status not in (JobStatus.COMPLETED, JobStatus.FAILED):
            return
        field = "succeeded" if job.status is JobStatus.COMPLETED else "failed"
        self.store.count(job.queue, {field: 1, "duration_ms": job.duration_ms or 0.0})

    def record_retry(self, job: Job) -> None:
        """Port form: count one retry of ``job``."""
        self.store.count(job.queue, {"retried": 1})

    def find_job(self, job_id: UUID | str) -> Job | None:
        return self.store.find_job(str(job_id))

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        return self.store.failed_jobs(limit)

    def dlq_size(self) -> int:
        return self.store.dlq_size()

    def purge_dlq(self, job_id: UUID | str | None = None) -> int:
        return self.store.purge_dlq(str(job_id) if job_id is not None else None)

    def retry_job(self, job_id: UUID | str, reset_retries: bool = False) -> Job | None:
        """Queue a dead job again now, at its own queue and priority; None if not in the DLQ."""
        jid = str(job_id)
        job = self.store.find_job(jid)
        if job is None or not self.store.take_from_dlq(jid):
            return None
        now = utcnow()
        again = prepare_retry(job, now, reset_retries=reset_retries)
        fields = {
            "status": again.status.value,
            "retry_count": again.retry_count,
            "max_retries": again.max_retries,
            "updated_at": to_ms(now),
        }
        try:
            self.publish(again, fields=fields, clear=_RETRY_CLEARS, due=now)
        except Exception:
            self.store.client.zadd(self.store.keys.dlq, {jid: to_ms(now)})
            raise
        return again

    # -- statistics (JobStats) --------------------------------------------------------

    def queue_stats(self, queue_name: str) -> QueueStats:
        return self._queue_stats([queue_name])[0]

    def _queue_stats(self, queues: list[str]) -> list[QueueStats]:
        counters = self.store.queue_counters(queues)
        depths = self.store.queue_depths(queues)
        out = []
        for q in queues:
            c = counters[q]
            processed = int(c["succeeded"] + c["failed"])
            by_level = {Priority.from_rank(step).value: n
                        for step, n in zip(PRIORITY_STEPS, depths[q], strict=True)}
            out.append(
                QueueStats(
                    queue_name=q,
                    size=sum(depths[q]),
                    processed_total=processed,
                    succeeded_total=int(c["succeeded"]),
                    failed_total=int(c["failed"]),
                    retried_total=int(c["retried"]),
                    avg_duration_ms=round(average_duration(c["duration_ms"], processed), 3),
                    size_by_priority=by_level,
                )
            )
        return out

    def job_stats(self) -> JobStatsReport:
        queues = self._queue_stats(self.store.list_queues())
        now_ms = to_ms(utcnow())
        window = self.settings.workers.heartbeat_interval_s * 3 * 1000
        return JobStatsReport(
            total_processed=sum(q.processed_total for q in queues),
            total_succeeded=sum(q.succeeded_total for q in queues),
            total_failed=sum(q.failed_total for q in queues),
            total_retried=sum(q.retried_total for q in queues),
            active_workers=self.store.active_workers(now_ms, window),
            dlq_size=self.store.dlq_size(),
            scheduled_count=self.store.scheduled_count(),
            scheduler_lag_ms=self.store.scheduler_lag_ms(now_ms),
            queues=queues,
        )

    # -- handlers (JobRegistry) -------------------------------------------------------

    def register_handler(self, job_type: str, handler: Callable[..., Any], **options: Any) -> None:
        """Register a plain function as the handler of ``job_type`` on this app."""
        from boundary_celery.shell.task import BoundaryTask, job_options

        self.app.task(name=job_type, base=BoundaryTask, **job_options(job_type, **options))(
            handler
        )

    def unregister_handler(self, job_type: str) -> None:
        self.app.tasks.pop(job_type, None)

    def get_handler(self, job_type: str) -> Callable[..., Any] | None:
        task = self.app.tasks.get(job_type)
        return task.run if task is not None else None

    def list_job_types(self) -> list[str]:
        return sorted(n for n in self.app.tasks if not n.startswith("celery."))


def _task_max_retries(task: Any, default: int) -> int:
    value = getattr(task, "boundary_max_retries", None)
    return default if value is None else int(value)


def _policy(value: RetryPolicy | Mapping[str, Any] | str | None) -> RetryPolicy | None:
    if value is None or isinstance(value, RetryPolicy):
        return value
    if isinstance(value, str):
        return RetryPolicy.preset(value)
    return RetryPolicy.from_config(value)
