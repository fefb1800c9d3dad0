"""Outcomes the pool child could not record: Celery's hard time limit killed it, or it
died (OOM killer, a signal). Runs in the worker's main process (``BoundaryRequest``).

The attempt ends as a failure (``TimeLimitExceeded`` / ``WorkerLostError``) that
follows the retry policy like any other: a retry is published through Celery (canvas
options travel with it) and waits in the scheduler; a final failure is dead-lettered.
A hard time limit of a plain Celery task is final (Celery does not retry it either); a
lost pool child is not the task's fault, so every task retries it by its policy (Celery
would have redelivered it, without a bound).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from boundary_celery.core.job import start_job
from boundary_celery.core.outcome import JobResult, error_from_exception, settle
from boundary_celery.core.status import JobStatus
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.execution import job_from_delivery
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.persist import persisting
from boundary_celery.shell.publishing import retrying_after
from boundary_celery.shell.task import BoundaryTask

log = logging.getLogger("boundary_celery.worker")


def record_interrupted(request: Any, exc: BaseException, *, lost: bool) -> bool:
    """Record the outcome of ``request``'s attempt that ``exc`` ended outside the pool
    child; True when recorded (the caller acks), False when not a job of ours."""
    task = request.task
    if not isinstance(task, BoundaryTask):
        return False
    ctx = request._context
    args, kwargs = tuple(request.args or ()), dict(request.kwargs or {})
    jobs = jobs_of(task.app)
    job = job_from_delivery(task, args, kwargs, req=ctx)
    verdict = jobs.store.start_verdict(str(job.id), job.retry_count)
    if verdict == "cancelled":  # asked to stop, and it did stop
        jobs.store.cancel(str(job.id), utcnow(), stopped=True)
    if verdict != "ok":
        return True  # finished, cancelled or moved on meanwhile: nothing more to record
    started = getattr(request, "time_start", None)
    begun = datetime.fromtimestamp(started, UTC) if started else utcnow()
    running = start_job(job, begun)
    end = utcnow()
    outcome = JobResult.failure(**error_from_exception(exc).model_dump())
    decided = settle(running, outcome, end, jobs.default_policy, jobs.rand, exc=exc,
                     automatic_retries=lost or task.boundary_declared)
    done = decided.job
    jid = str(job.id)
    error = done.error.message if done.error else None
    if decided.retry_delay_ms is not None and done.status is JobStatus.RETRYING:
        due = end + timedelta(milliseconds=decided.retry_delay_ms)
        signature = task.signature_from_request(ctx, args, kwargs, eta=due,
                                                retries=job.retry_count + 1)
        with retrying_after(done.error):
            persisting(signature.apply_async, what="publish a retry")
        log.warning(event("Job failed", job_id=jid, job_type=job.job_type, error=error,
                          retry_count=done.retry_count, retry_in_ms=decided.retry_delay_ms))
        return True
    persisting(lambda: jobs.store.dead_letter(done, count=True), what="dead-letter a job")
    log.warning(event("Job failed", job_id=jid, job_type=job.job_type, error=error,
                      retry_count=done.retry_count, dead_lettered=True))
    return True

