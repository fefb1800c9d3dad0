"""``Jobs``: the job system installed on one Celery app, the API admin and CLI call.

It implements the ``JobQueue`` and ``JobRegistry`` ports over Celery: publishing goes
through ``send_task``, so routing, task events and Flower work as usual, and the boundary
transport stores each message with its record write (built by the store) in one round
trip. The ``JobStore`` and ``JobStats`` ports are the store's (``jobs.store``); the
methods of the same names here only pass through.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from boundary_celery.adapters.redis_store import (
    JobDetail,
    RecordWrite,
    RedisJobStore,
    ScheduledEntry,
)
from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import Job, JobInput, create_job
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.stats import JobStatsReport, QueueStats
from boundary_celery.core.status import CancelAction
from boundary_celery.core.validation import (
    ENQUEUE_OPTIONS,
    check_args_size,
    check_items,
    check_options,
    check_positive,
    check_uuid,
    encode_json,
)
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell import bulk, wire
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.conf_policy import ConfNote
from boundary_celery.shell.context import TenantHook
from boundary_celery.shell.defaults import as_policy, policy_from_settings, task_max_retries
from boundary_celery.shell.publishing import message_args, record_args
from boundary_celery.shell.revoked import broadcast_revoke
from boundary_celery.shell.task import BoundaryTask, job_options
from boundary_celery.shell.timeouts import broker_error

if TYPE_CHECKING:
    from celery import Celery

#: Options of :meth:`Jobs.enqueue` (also ``prepare``'s ``now`` and ``retry_count``).
_OPTIONS = ENQUEUE_OPTIONS | {"now", "retry_count", "timeout_ms"}
#: Keys of one :meth:`Jobs.enqueue_many` item.
_ITEM_KEYS = (_OPTIONS - {"timeout_ms"}) | {"job_type", "args"}


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
        #: What install() did with each Celery setting (see ``conf_policy``).
        self.conf_notes: list[ConfNote] = []
        store.requeue = self.requeue

    # -- enqueueing (JobQueue) ------------------------------------------------------

    def build_job(self, job_type: str, args: Mapping[str, Any] | None = None,
                  **options: Any) -> Job:
        """Validate an enqueue request into a new job; raises JobValidationError."""
        check_options(options, _OPTIONS)
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
        retry_count: int = 0,
    ) -> tuple[Job, tuple[str, ...]]:
        """The new job and the fields only defaulted here (job type unknown locally).
        ``retry_count`` is for a retry's message (Celery's ``retries``). Any bad value,
        or args whose JSON is over ``[store] max_args_bytes`` or that the job type's
        handler (when registered here) does not take, raises JobValidationError."""
        task = self.app.tasks.get(job_type) if isinstance(job_type, str) else None
        defaulted: list[str] = []
        if task is None and max_retries is None:
            defaulted.append("mr")
        if task is None and retry_policy is None:
            defaulted.append("rp")
        data: dict[str, Any] = {
            "job_type": job_type,
            "args": args if args is not None else {},
            "priority": priority if priority is not None
            else getattr(task, "boundary_priority", Priority.NORMAL),
            "queue": queue if queue is not None
            else getattr(task, "boundary_queue", None) or self.app.conf.task_default_queue,
            "max_retries": max_retries if max_retries is not None
            else task_max_retries(task, self.settings.retry.max_retries),
            "metadata": metadata if metadata is not None else {},
            "tenant_id": tenant_id,
            "execute_at": execute_at,
        }
        policy = as_policy(retry_policy) or getattr(task, "boundary_retry_policy", None)
        if policy is not None:
            data["retry_policy"] = policy
        spec = JobInput.parse(data, max_args_bytes=self.settings.store.max_args_bytes)
        if task is not None:  # the handler is known here: the arguments must fit it
            record_args(task, *message_args(spec.args))
        self.check_queue(spec.queue)
        new_id = check_uuid("job_id", job_id) if job_id is not None else uuid.uuid4()
        job = create_job(spec, new_id, now or utcnow())
        if retry_count:
            job = job.model_copy(update={"retry_count": retry_count})
        return job, tuple(defaulted)

    def check_queue(self, queue: str) -> None:
        """Reject a queue that is not declared (when queues are declared in settings)."""
        declared = self.settings.store.declared_queues
        if declared is not None and queue not in declared:
            raise JobValidationError(
                "queue", queue, f"not a declared queue (declared: {', '.join(declared)})"
            )

    def enqueue(self, job_type: str, args: Mapping[str, Any] | None = None, **options: Any) -> str:
        """Validate and publish a job; returns its id. Options as :meth:`prepare`.

        Bad input raises JobValidationError naming the field; a broker that refuses or
        does not answer within ``[redis] timeout_ms`` raises BrokerUnavailableError (a
        ``BrokerPublishError``) within about 3 x timeout_ms (see ``shell.timeouts``)."""
        check_options(options, _OPTIONS)
        timeout_ms = options.pop("timeout_ms", None)
        if timeout_ms is not None:
            check_positive("timeout_ms", timeout_ms)
        job, defaulted = self.prepare(job_type, args, **options)
        self.publish(job, defaulted=defaulted, timeout_ms=timeout_ms)
        return str(job.id)

    def schedule(
        self, job_type: str, args: Mapping[str, Any] | None = None, *, execute_at: datetime,
        **options: Any,
    ) -> str:
        """Publish a job that must not start before ``execute_at`` (aware, or ISO 8601)."""
        if execute_at is None:
            raise JobValidationError("execute_at", None, "required")
        return self.enqueue(job_type, args, execute_at=execute_at, **options)

    def enqueue_job(self, queue_name: str, job: Job) -> UUID:
        """Port form: publish an already created job on ``queue_name``."""
        self.check_queue(queue_name)
        check_args_size(encode_json("args", job.args)[1], self.settings.store.max_args_bytes)
        job = job.model_copy(update={"queue": queue_name})
        self.publish(job)
        return job.id

    def schedule_job(self, queue_name: str, job: Job, execute_at: datetime) -> UUID:
        """Port form: publish ``job`` on ``queue_name`` to run at ``execute_at``."""
        return self.enqueue_job(queue_name, job.model_copy(update={"execute_at": execute_at}))

    def publish(
        self,
        job: Job,
        write: RecordWrite | None = None,
        *,
        due: datetime | None = None,
        defaulted: Iterable[str] = (),
        timeout_ms: int | None = None,
    ) -> None:
        """Send ``job`` as a Celery task message; the transport stores the record ``write``
        (default: the whole new record, see ``publishing``) with it, held until ``due``
        (default ``job.execute_at``) when that is in the future. ``timeout_ms`` (the
        guide's per-enqueue job timeout) is Celery's hard time limit for this job and its
        retries (the job type's own limit otherwise)."""
        headers: dict[str, Any] = {wire.JOB: job}
        defaulted = sorted(defaulted)
        if defaulted:  # the rest of the header is built once, by publishing.finish_headers
            headers[wire.META] = {"d": defaulted}
        if write is not None:
            headers[wire.WRITE] = write
        args, kwargs = message_args(job.args)
        limits: dict[str, Any] = {} if timeout_ms is None else {"time_limit": timeout_ms / 1000}
        self.app.send_task(
            job.job_type,
            args=args,
            kwargs=kwargs,
            task_id=str(job.id),
            queue=job.queue,
            routing_key=job.queue,
            priority=job.priority.celery,
            headers=headers,
            eta=due if due is not None else job.execute_at,
            retries=job.retry_count,
            **limits,
        )

    def requeue(self, job: Job, write: RecordWrite) -> None:
        """Publish ``job`` now with ``write`` (the store's hook for ``retry_job``)."""
        self.publish(job, write, due=utcnow())

    def enqueue_many(self, items: Iterable[Mapping[str, Any]],
                     batch_size: int = bulk.DEFAULT_BATCH_SIZE) -> list[str]:
        """Validate every item, then publish them pipelined; returns the job ids in order.
        Items are ``{"job_type": ..., "args": {...}, **options of enqueue}``. Errors as
        :meth:`enqueue`; a broker failure raises after ``[redis] timeout_ms`` (no retry)."""
        listed = check_items(items, _ITEM_KEYS)
        check_positive("batch_size", batch_size)
        try:
            return bulk.enqueue_many(self, listed, batch_size=batch_size)
        except Exception as exc:
            error = broker_error(self.app.conf, exc)
            if error is None or error is exc:
                raise
            raise error from exc

    def dequeue_job(self, queue_name: str) -> Job | None:
        """Port form: take the most urgent waiting job of ``queue_name`` off the broker
        (the caller runs it; a Celery worker normally does this)."""
        return self.store.pop_job(queue_name)

    def queue_size(self, queue_name: str) -> int:
        """Jobs waiting in ``queue_name`` at every level (scheduled ones not counted)."""
        return sum(self.queue_sizes_by_priority(queue_name).values())

    def queue_sizes_by_priority(self, queue_name: str) -> dict[str, int]:
        """Waiting jobs of ``queue_name`` per level."""
        return self.store.queue_depths([queue_name])[queue_name]

    def scheduled_count(self) -> int:
        return self.store.scheduled_count()

    def scheduled_jobs(self, limit: int = 50) -> list[ScheduledEntry]:
        """The next scheduled jobs with their due time, soonest first."""
        return self.store.scheduled_jobs(limit)

    def process_scheduled_jobs(self, now: datetime | None = None) -> int:
        """Publish every scheduled job due at ``now``; returns how many moved."""
        batch = self.settings.scheduler.batch_size
        moment = now or utcnow()
        total = 0
        while True:
            moved = self.store.move_due(moment, batch)
            total += moved
            if moved < batch:
                return total

    def list_queues(self) -> list[str]:
        return self.store.list_queues()

    # -- the store's ports, passed through (JobStore, JobStats) ---------------------------

    def save_job(self, job: Job) -> None:
        self.store.save_job(job)

    def find_job(self, job_id: UUID | str) -> Job | None:
        return self.store.find_job(job_id)

    def job_detail(self, job_id: UUID | str) -> JobDetail | None:
        """The job with its attempts, last worker and DLQ membership."""
        return self.store.job_detail(str(job_id))

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        return self.store.failed_jobs(limit)

    def dead_letter(self, job: Job) -> None:
        self.store.dead_letter(job)

    def dlq_size(self) -> int:
        return self.store.dlq_size()

    def purge_dlq(self, job_id: UUID | str | None = None) -> int:
        return self.store.purge_dlq(job_id)

    def retry_job(self, job_id: UUID | str, reset_retries: bool = False) -> Job | None:
        """Queue a dead job again now, at its own queue and priority; None if not in the DLQ."""
        return self.store.retry_job(job_id, reset_retries, now=utcnow())

    def cancel_job(self, job_id: UUID | str, *, terminate: bool = False) -> Job | None:
        """Cancel a job; returns it after the call, None when there is no record.

        A pending, scheduled or retrying job is cancelled at once and never runs. A
        running job gets its cancellation requested (its handler may stop early, see
        :func:`~boundary_celery.shell.revoked.cancel_requested`) and Celery's revoke is
        broadcast: a worker holding it unstarted skips it, ``terminate`` kills it if it
        runs, and the worker records either as cancelled. A finished job is unchanged.
        """
        done = self.cancel(job_id, terminate=terminate)
        return done[1] if done is not None else None

    def cancel(self, job_id: UUID | str, *,
               terminate: bool = False) -> tuple[CancelAction, Job] | None:
        """:meth:`cancel_job`, also saying what it did (cancelled now, requested, or
        nothing: the job had finished)."""
        done = self.store.cancel(job_id, utcnow())
        if done is not None and done[0] is CancelAction.REQUEST:
            broadcast_revoke(self.app, str(done[1].id), terminate=terminate)
        return done

    def cancel_requested(self, job_id: UUID | str) -> bool:
        return self.store.cancel_requested(job_id)

    def record_outcome(self, job: Job) -> None:
        self.store.record_outcome(job)

    def record_retry(self, job: Job) -> None:
        self.store.record_retry(job)

    def queue_stats(self, queue_name: str) -> QueueStats:
        return self.store.queue_stats(queue_name)

    def job_stats(self) -> JobStatsReport:
        return self.store.job_stats(utcnow())

    def duration_histograms(self) -> list[tuple[str, str, list[int], int, float]]:
        """Per (queue, job type): bucket counts (with +Inf), count and sum in ms."""
        return self.store.duration_histograms()

    # -- handlers (JobRegistry) -------------------------------------------------------

    def register_handler(self, job_type: str, handler: Callable[..., Any], **options: Any) -> None:
        """Register a plain function as the handler of ``job_type`` on this app only,
        replacing the previous handler of that type."""
        self.app.tasks.pop(job_type, None)
        self.app.task(name=job_type, base=BoundaryTask, shared=False,
                      **job_options(job_type, **options))(handler)

    def unregister_handler(self, job_type: str) -> None:
        self.app.tasks.pop(job_type, None)

    def get_handler(self, job_type: str) -> Callable[..., Any] | None:
        task = self.app.tasks.get(job_type)
        return task.run if task is not None else None

    def list_job_types(self) -> list[str]:
        return sorted(n for n in self.app.tasks if not n.startswith("celery."))
