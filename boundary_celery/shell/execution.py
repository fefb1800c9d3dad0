"""One delivery of a job in a worker process: record, run, settle, persist.

The core decides (start, settle: complete / retry with a delay / dead-letter); this
module only reads the message, calls the handler and writes what was decided. A plain
Celery task keeps Celery's semantics (its return value is the result, it retries only
through its own retry API); a declared job type follows its Boundary retry policy and
may return the failure shape. Every retry is published by Celery's ``Task.retry``, so
canvas options travel with it, and waits in the boundary scheduler.
Redis round trips per successful job beyond Celery's own: the publish (which also
writes the record), and ``complete``. ``begin`` rides in the consumer's unacked
transaction (transport.QoS); it is a round trip of its own only where no consumer
hook ran (e.g. ``task.apply()``). An outcome that cannot be written (Redis
restarting) is retried before the message is acknowledged (``persist``), and so are
the pool's own ``begin`` and a retry's publish (``retry_publish``): a retry that cannot
be published dead-letters the job, never drops it.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import ExitStack
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from celery import Task as CeleryTask
from celery.exceptions import Ignore, Reject, Retry

from boundary_celery.core.errors import JobCancelledError, RetryNotPublishedError
from boundary_celery.core.job import Job, JobError, dead_letter_job, start_job
from boundary_celery.core.outcome import (
    JobResult,
    error_from_exception,
    interpret_handler_return,
    settle,
)
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.status import JobStatus
from boundary_celery.shell import wire
from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.context import JobContext, job_context
from boundary_celery.shell.defaults import task_max_retries
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.persist import persisting
from boundary_celery.shell.poison import poison_job
from boundary_celery.shell.publishing import record_args, retrying_after

if TYPE_CHECKING:
    from boundary_celery.shell.task import BoundaryTask

log = logging.getLogger("boundary_celery.worker")


class JobFailedError(Exception):
    """Raised to Celery when a handler returned the failure shape (no exception)."""


def effective_max_retries(task: BoundaryTask, meta: dict[str, Any]) -> int:
    """The message's max_retries, else the job type's, else the configured default."""
    if "mr" in meta:
        return int(meta["mr"])
    return task_max_retries(task, jobs_of(task.app).settings.retry.max_retries)


def job_from_delivery(task: BoundaryTask, args: tuple[Any, ...], kwargs: dict[str, Any],
                      req: Any = None, *, strict: bool = True) -> Job:
    """The job this delivery carries: Celery's fields (id, task name, retries, priority,
    queue), the ``boundary`` header and the job type's definition. ``req`` is the
    delivery's Celery context (default: the task's current request). Arguments the
    handler does not take raise, unless not ``strict``: then they are kept as they came."""
    req = task.request if req is None else req
    meta = wire.effective_meta(getattr(req, wire.META, None))
    delivery = req.delivery_info or {}
    policy = meta.get("rp")
    pri = delivery.get("priority")
    return Job(
        id=uuid.UUID(str(req.id)),
        job_type=getattr(req, "task", None) or task.name,
        queue=meta.get("q") or delivery.get("routing_key") or task.app.conf.task_default_queue,
        args=_job_args(task, args, kwargs, strict),
        priority=Priority.from_celery(pri) if isinstance(pri, int) and 0 <= pri <= 9
        else task.boundary_priority,
        status=JobStatus.PENDING,
        retry_count=int(req.retries or 0),
        max_retries=effective_max_retries(task, meta),
        tenant_id=meta.get("t"),
        metadata=meta.get("m") or {},
        retry_policy=RetryPolicy.from_config(policy) if policy else task.boundary_retry_policy,
    )


def _job_args(task: BoundaryTask, args: tuple[Any, ...], kwargs: dict[str, Any],
              strict: bool) -> dict[str, Any]:
    try:
        return record_args(task, args, kwargs)
    except Exception:
        if strict:
            raise
        return {"args": list(args), "kwargs": dict(kwargs)}


def run_delivery(task: BoundaryTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one delivered job to a recorded outcome (see module docstring)."""
    jobs = jobs_of(task.app)
    try:
        job = job_from_delivery(task, args, kwargs)
    except Exception as unreadable:  # e.g. arguments the handler's signature cannot take
        _dead_letter_unreadable(task, args, kwargs, unreadable)
        raise unreadable from None  # Celery reports the failure (result, errbacks)
    jid = str(job.id)
    now = utcnow()
    verdict = getattr(task.request, wire.VERDICT, None)  # begun on receipt by the consumer
    if verdict is None or verdict == "missing":
        worker, tag = task.request.hostname or "", str(getattr(task.request, wire.TAG, "") or "")
        lease_s = float(jobs.settings.workers.lease_s)
        verdict = persisting(lambda: jobs.store.begin(job, now, worker, tag=tag, lease_s=lease_s),
                             what="start a job")
    elif verdict == "ok" and _waited_ms(task.request, now) > RECHECK_AFTER_MS:
        # Held in the worker a while since receipt: finished or cancelled meanwhile?
        verdict = persisting(lambda: jobs.store.start_verdict(jid, job.retry_count),
                             what="start a job")
        if verdict == "cancelled":
            persisting(lambda: jobs.store.cancel(jid, now, stopped=True),
                       what="record a cancellation")
    if verdict != "ok":
        log.info(event("Skipping delivery", job_id=jid, job_type=job.job_type, reason=verdict))
        raise Ignore()
    running = start_job(job, now)
    declared = task.boundary_declared
    verbose = log.isEnabledFor(logging.INFO)  # format the lines only when they are kept
    if verbose:
        log.info(event("Processing job", job_id=jid, job_type=job.job_type, queue=job.queue,
                       priority=job.priority.value, attempt=job.retry_count + 1))

    exc: Exception | None = None
    value: Any = None
    try:
        with ExitStack() as stack:
            stack.enter_context(job_context(_context(running)))
            if job.tenant_id is not None and jobs.tenant_hook is not None:
                stack.enter_context(jobs.tenant_hook(job.tenant_id))
            value = _invoke(task, args, kwargs)
        outcome = interpret_handler_return(value) if declared else JobResult.success(value)
    except Retry as retry:  # the task's own retry API: the retry is published and recorded
        log.warning(event("Job failed", job_id=jid, job_type=job.job_type,
                          error=str(retry.exc) if retry.exc else None,
                          retry_count=job.retry_count + 1, retry_at=str(retry.when)))
        raise
    except (Ignore, Reject) as flow:  # Celery's own control flow, recorded (see below)
        _record_control_flow(task, running, flow)
        raise
    except JobCancelledError:  # the handler stopped because cancel_requested() said so
        persisting(lambda: jobs.store.cancel(jid, utcnow(), stopped=True),
                   what="record a cancellation")
        log.info(event("Job cancelled", job_id=jid, job_type=job.job_type))
        raise Ignore() from None
    except Exception as err:
        exc = err
        outcome = JobResult.failure(**error_from_exception(err).model_dump())

    end = utcnow()
    decided = settle(running, outcome, end, jobs.default_policy, jobs.rand, exc=exc,
                     automatic_retries=declared)
    done = decided.job
    if done.status is JobStatus.COMPLETED:
        persisting(lambda: jobs.store.complete(done, end), what="record a completion")
        if verbose:
            log.info(event("Job completed successfully", job_id=jid, job_type=job.job_type,
                           duration_ms=done.duration_ms))
        return done.result if declared else value
    if decided.retry_delay_ms is not None:  # a declared job type's retry policy
        due = end + timedelta(milliseconds=decided.retry_delay_ms)
        log.warning(event("Job failed", job_id=jid, job_type=job.job_type,
                          error=done.error.message if done.error else None,
                          retry_count=done.retry_count, retry_in_ms=decided.retry_delay_ms))
        try:
            with retrying_after(done.error):  # raises Retry once the retry is published
                task.retry(exc=exc or JobFailedError(_message(done)), eta=due,
                           max_retries=done.max_retries)
        except RetryNotPublishedError as unpublished:  # outage past the budget, bad args
            exc = unpublished
            done = dead_letter_job(done, error_from_exception(unpublished), utcnow())
    persisting(lambda: jobs.store.dead_letter(done, count=True), what="dead-letter a job")
    log.warning(event("Job failed", job_id=jid, job_type=job.job_type,
                      error=done.error.message if done.error else None,
                      retry_count=done.retry_count, dead_lettered=True))
    if exc is not None:
        raise exc
    raise JobFailedError(_message(done))


def _record_control_flow(task: BoundaryTask, job: Job, flow: Exception) -> None:
    """Leave no record running after the handler raised Celery's ``Reject`` or ``Ignore``.

    ``Reject(requeue=False)``: Celery drops the message (Redis has no dead-letter
    exchange), so the job is dead-lettered with the reason. ``Reject(requeue=True)``: the
    message comes back and runs again; nothing to record. ``Ignore`` (the handler took
    the message in hand, e.g. ``self.replace()``): a record still ``running`` (no
    replacement rewrote it) is cancelled with the reason ``ignored``.
    """
    jobs = jobs_of(task.app)
    jid, now = str(job.id), utcnow()
    if isinstance(flow, Reject):
        if getattr(flow, "requeue", False):
            return
        reason = getattr(flow, "reason", None)
        error = JobError(type="Rejected",
                         message=f"rejected by the task (Reject, requeue=False): {reason!r}")
        failed = dead_letter_job(job, error, now)
        persisting(lambda: jobs.store.dead_letter(failed, count=True), what="dead-letter a job")
        log.warning(event("Job rejected; dead-lettered", job_id=jid, job_type=job.job_type))
        return
    status = persisting(lambda: jobs.store.status_of(jid), what="read a job")
    if status is JobStatus.RUNNING:
        error = JobError(type="Ignored", message="ignored by the task (Celery's Ignore)")
        persisting(lambda: jobs.store.cancel(jid, now, stopped=True, reason=error),
                   what="record a cancellation")


def _dead_letter_unreadable(task: BoundaryTask, args: tuple[Any, ...],
                            kwargs: dict[str, Any], exc: Exception) -> None:
    """Dead-letter a delivery whose job cannot be built, with the reason and what it
    carried (its record would otherwise stay ``running``)."""
    req = task.request
    delivery = req.delivery_info or {}
    reason = f"cannot read the job from the message: {exc!r}"
    raw = json.dumps({"args": args, "kwargs": kwargs}, default=repr)
    jobs = jobs_of(task.app)
    job = poison_job(job_id=str(req.id), job_type=getattr(req, "task", None) or task.name,
                     queue=str(delivery.get("routing_key") or task.app.conf.task_default_queue),
                     reason=reason, error_type="PoisonMessageError", now=utcnow(), raw=raw)
    persisting(lambda: jobs.store.dead_letter(job, count=True), what="dead-letter a job")
    log.warning(event("Message dead-lettered", job_id=str(job.id), job_type=job.job_type,
                      reason=reason))


#: A delivery that waited longer than this in the worker since its receipt (prefetched,
#: or the pool was busy) re-reads its record before it starts.
RECHECK_AFTER_MS = 1000


def _waited_ms(request: Any, now: Any) -> float:
    """Milliseconds since the consumer received this delivery (0 when unknown)."""
    received = getattr(request, wire.RECEIVED, None)
    if not isinstance(received, int | float):
        return 0.0
    return epoch_ms(now) - received


def _invoke(task: BoundaryTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the handler as Celery would: through a custom ``__call__`` of the user's own
    task base (e.g. one that opens an app context), else ``run``."""
    inner = _custom_call(type(task))  # type: ignore[arg-type]
    return inner(task, *args, **kwargs) if inner is not None else task.run(*args, **kwargs)


@cache
def _custom_call(cls: type) -> Any:
    """The ``__call__`` after BoundaryTask's in ``cls``'s MRO when it is not Celery's own."""
    mro = cls.__mro__
    ours = next(i for i, c in enumerate(mro) if c.__qualname__ == "BoundaryTask"
                and c.__module__ == "boundary_celery.shell.task")
    below = [c for c in mro[ours + 1:] if "__call__" in c.__dict__]
    if not below or below[0] is CeleryTask:
        return None
    return below[0].__dict__["__call__"]


def _message(job: Job) -> str:
    return job.error.message if job.error else "job failed"


def _context(job: Job) -> JobContext:
    return JobContext(
        job_id=str(job.id), job_type=job.job_type, queue=job.queue,
        priority=Priority(job.priority), tenant_id=job.tenant_id,
        retry_count=job.retry_count, max_retries=job.max_retries, metadata=dict(job.metadata),
    )
