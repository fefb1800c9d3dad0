"""One delivery of a job in a worker process: record, run, settle, persist.

The core decides (start, settle: complete / retry with a delay / dead-letter); this
module only reads the message, calls the handler and writes what was decided.
Redis round trips per successful job beyond Celery's own: the publish (which also
writes the record), and ``complete``. ``begin`` rides in the consumer's unacked
transaction (transport.QoS); it is a round trip of its own only where no consumer
hook ran (e.g. ``task.apply()``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore, Retry

from boundary_celery.adapters.redis_records import dumps, flatten, job_fields, to_ms
from boundary_celery.core.errors import UnknownTenantError
from boundary_celery.core.job import (
    Job,
    JobResult,
    JobStatus,
    interpret_handler_return,
    start_job,
)
from boundary_celery.core.outcome import error_from_exception, settle
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.shell import headers as H
from boundary_celery.shell.context import JobContext, job_context
from boundary_celery.shell.install import jobs_of
from boundary_celery.shell.jobs import Jobs, utcnow
from boundary_celery.shell.logfmt import event

if TYPE_CHECKING:
    from boundary_celery.shell.task import BoundaryTask

log = logging.getLogger("boundary_celery.worker")


class JobFailedError(Exception):
    """Raised to Celery when a handler returned the failure shape (no exception)."""


def effective_meta(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The message's job meta without the values its publisher only guessed."""
    meta = dict(raw or {})
    for guessed in meta.pop("d", ()):  # the publisher did not know this job type
        meta.pop(guessed, None)
    return meta


def effective_max_retries(task: BoundaryTask, meta: dict[str, Any]) -> int:
    """The message's max_retries, else the job type's, else the configured default."""
    if "mr" in meta:
        return int(meta["mr"])
    return _task_max_retries(task)


def begin_hook(jobs: Jobs, worker: str) -> Callable[[Any], tuple[list[str], list[Any]] | None]:
    """The ``begin.lua`` call for a message the worker receives (see transport.QoS)."""
    from boundary_celery.shell.task import BoundaryTask

    tasks = jobs.app.tasks
    keys = jobs.store.keys

    def call(message: Any) -> tuple[list[str], list[Any]] | None:
        headers = message.headers or {}
        raw = headers.get(H.META)
        task = tasks.get(str(headers.get("task")))
        if raw is None or not isinstance(task, BoundaryTask):
            return None  # not a job message: the pool child (or the consumer) handles it
        meta = effective_meta(raw)
        return ([keys.job(str(headers["id"]))],
                [to_ms(utcnow()), worker, int(meta.get("rc", 0)),
                 effective_max_retries(task, meta)])

    return call


def job_from_delivery(task: BoundaryTask, kwargs: dict[str, Any]) -> Job:
    """The job this delivery carries (from its message and the job type's definition)."""
    req = task.request
    meta = effective_meta(getattr(req, H.META, None))
    delivery = req.delivery_info or {}
    policy = meta.get("rp")
    job = Job(
        id=uuid.UUID(str(req.id)),
        job_type=task.name,
        queue=meta.get("q") or delivery.get("routing_key") or task.boundary_queue,
        args=kwargs,
        priority=meta.get("p") or task.boundary_priority,
        status=JobStatus.PENDING,
        retry_count=int(meta.get("rc", 0)),
        max_retries=effective_max_retries(task, meta),
        tenant_id=meta.get("t"),
        metadata=meta.get("m") or {},
        retry_policy=RetryPolicy.from_config(policy) if policy else task.boundary_retry_policy,
    )
    return job


def _task_max_retries(task: BoundaryTask) -> int:
    if task.boundary_max_retries is not None:
        return task.boundary_max_retries
    return jobs_of(task.app).settings.retry.max_retries


def run_delivery(task: BoundaryTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one delivered job to a recorded outcome (see module docstring)."""
    jobs = jobs_of(task.app)
    job = job_from_delivery(task, kwargs)
    jid = str(job.id)
    now = utcnow()
    verdict = getattr(task.request, H.VERDICT, None)  # begun on receipt by the consumer
    if verdict is None or verdict == "missing":
        create = flatten(job_fields(job.model_copy(update={"created_at": now})))
        verdict = jobs.store.begin(jid, to_ms(now), task.request.hostname or "", job.retry_count,
                                   job.max_retries, create)
    if verdict != "ok":
        log.info(event("Skipping delivery", job_id=jid, job_type=job.job_type, reason=verdict))
        raise Ignore()
    running = start_job(job, now)
    verbose = log.isEnabledFor(logging.INFO)  # format the lines only when they are kept
    if verbose:
        log.info(event("Processing job", job_id=jid, job_type=job.job_type, queue=job.queue,
                       priority=job.priority.value, attempt=job.retry_count + 1))

    exc: BaseException | None = None
    final = False
    try:
        with ExitStack() as stack:
            stack.enter_context(job_context(_context(running)))
            if job.tenant_id is not None and jobs.tenant_hook is not None:
                stack.enter_context(jobs.tenant_hook(job.tenant_id))
            outcome = interpret_handler_return(task.run(*args, **kwargs))
    except UnknownTenantError as err:
        exc, final = err, True
        outcome = JobResult.failure(**error_from_exception(err).model_dump())
    except Exception as err:
        exc = err
        outcome = JobResult.failure(**error_from_exception(err).model_dump())

    end = utcnow()
    if final:  # an unknown tenant never gets better by retrying
        running = running.model_copy(update={"max_retries": running.retry_count})
    decided = settle(running, outcome, end, jobs.default_policy, jobs.rand)
    done = decided.job
    if done.status is JobStatus.COMPLETED:
        duration = done.duration_ms or 0.0
        jobs.store.complete(jid, job.job_type, job.queue, dumps(done.result), to_ms(end),
                            duration)
        if verbose:
            log.info(event("Job completed successfully", job_id=jid, job_type=job.job_type,
                           duration_ms=done.duration_ms))
        return done.result
    if decided.retry_delay_ms is not None:
        due = end + timedelta(milliseconds=decided.retry_delay_ms)
        _publish_retry(jobs, done, due, end)
        log.warning(event("Job failed", job_id=jid, job_type=job.job_type,
                          error=done.error.message if done.error else None,
                          retry_count=done.retry_count, retry_in_ms=decided.retry_delay_ms))
        reason: Exception = exc if isinstance(exc, Exception) else JobFailedError(_message(done))
        raise Retry(exc=reason, when=due)
    _dead_letter(jobs, done, end)
    log.warning(event("Job failed", job_id=jid, job_type=job.job_type,
                      error=done.error.message if done.error else None,
                      retry_count=done.retry_count, dead_lettered=True))
    if exc is not None:
        raise exc
    raise JobFailedError(_message(done))


def _message(job: Job) -> str:
    return job.error.message if job.error else "job failed"


def _context(job: Job) -> JobContext:
    return JobContext(
        job_id=str(job.id), job_type=job.job_type, queue=job.queue,
        priority=Priority(job.priority), tenant_id=job.tenant_id,
        retry_count=job.retry_count, max_retries=job.max_retries, metadata=dict(job.metadata),
    )


def _publish_retry(jobs: Jobs, job: Job, due: Any, now: Any) -> None:
    """Re-publish the job to the scheduled set with its new retry count and error."""
    fields: dict[str, Any] = {
        "status": job.status.value,
        "retry_count": job.retry_count,
        "updated_at": to_ms(now),
        "execute_at": to_ms(due),
    }
    if job.error is not None:
        fields["error"] = dumps(job.error.model_dump())
    jobs.publish(job, fields=fields, due=due, counter="retried")


def _dead_letter(jobs: Jobs, job: Job, now: Any) -> None:
    fields: dict[str, Any] = {
        "status": job.status.value,
        "retry_count": job.retry_count,
        "updated_at": to_ms(now),
        "completed_at": to_ms(now),
    }
    if job.duration_ms is not None:
        fields["duration_ms"] = round(job.duration_ms, 3)
    if job.error is not None:
        fields["error"] = dumps(job.error.model_dump())
    jobs.store.dead_letter(str(job.id), job.queue, to_ms(now), fields, job.duration_ms)
    if job.duration_ms is not None:
        jobs.store.record_duration(job.job_type, job.queue, job.duration_ms)
