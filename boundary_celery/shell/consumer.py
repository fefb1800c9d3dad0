"""Worker consumer and request hooks: nothing a worker cannot run is ever discarded.

- an unknown job type is re-scheduled for a grace window (rolling deploys), then
  dead-lettered with ``NoHandlerError``;
- a message that cannot be decoded or validated is dead-lettered with the reason.
Celery's own behaviour (log and drop) would lose the job.
"""

# kombu/celery internals used here are untyped attributes of their classes.
# mypy: disable-error-code="attr-defined"
from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.exceptions import Ignore, Reject, Retry, TimeLimitExceeded
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from celery.worker.state import task_ready
from kombu.exceptions import ContentDisallowed, DecodeError

from boundary_celery.adapters.deliveries import HOLDINGS_ATTR, Holdings
from boundary_celery.core import JobStatus, valid_transition
from boundary_celery.core.job import Job
from boundary_celery.core.priority import Priority
from boundary_celery.shell import wire
from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.envelope import is_connection_error
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.interrupted import record_interrupted
from boundary_celery.shell.logfmt import count, event
from boundary_celery.shell.poison import poison_job
from boundary_celery.shell.transport import started_tags

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

log = logging.getLogger("boundary_celery.worker")


def _raw(message: Any) -> str:
    raw = getattr(message, "_raw", None)
    try:
        return json.dumps(raw, default=repr) if raw is not None else repr(message.body)
    except Exception:
        return repr(raw)


def _queue(message: Any, meta: dict[str, Any]) -> str:
    info = getattr(message, "delivery_info", None) or {}
    return str(meta.get("q") or info.get("routing_key") or "default")


def _readable_job(jobs: Jobs, job_id: Any) -> Job | None:
    """The stored job with this id, or None if there is none or it cannot be read."""
    if not job_id:
        return None
    try:
        return jobs.store.find_job(str(job_id))
    except Exception:
        return None


def dead_letter_message(app: Any, message: Any, reason: str, error_type: str) -> Job:
    """Dead-letter a delivered message that cannot run, keeping what it says."""
    jobs = jobs_of(app)
    headers = getattr(message, "headers", None) or {}
    meta = headers.get(wire.META) or {}
    existing = _readable_job(jobs, headers.get("id"))
    job_id = headers.get("id")
    if existing is not None and not valid_transition(existing.status, JobStatus.FAILED):
        existing, job_id = None, None  # never rewrite a finished job: record a new one
    job = poison_job(
        job_id=job_id, job_type=headers.get("task"), queue=_queue(message, meta),
        reason=reason, error_type=error_type, now=utcnow(), raw=_raw(message),
        priority=Priority.parse(meta.get("p")), existing=existing,
    )
    jobs.store.dead_letter(job, count=True)
    log.warning(event("Message dead-lettered", job_id=str(job.id), job_type=job.job_type,
                      reason=reason))
    return job


def handle_unknown_job_type(jobs: Jobs, message: Any) -> None:
    """Re-schedule a job no worker has a handler for, until its grace window ends."""
    headers = message.headers
    job_id, job_type = str(headers["id"]), str(headers["task"])
    meta = dict(headers.get(wire.META) or {})
    now = utcnow()
    verdict = jobs.store.start_verdict(job_id, int(headers.get("retries") or 0))
    if verdict != "ok":  # cancelled (or finished) while it waited for a handler
        log.info(event("Skipping delivery", job_id=job_id, job_type=job_type, reason=verdict))
        return
    now_ms = epoch_ms(now)
    since = int(meta.get("nh") or now_ms)
    grace_ms = jobs.settings.store.no_handler_grace_s * 1000
    log.error(event("No handler for job type", job_id=job_id, job_type=job_type))
    if now_ms - since >= grace_ms:
        dead_letter_message(
            jobs.app, message,
            f"No handler for job type {job_type!r} (waited {grace_ms // 1000} s)",
            "NoHandlerError",
        )
        return
    raw = dict(message._raw)
    raw["headers"] = {**(raw.get("headers") or {}), wire.META: {**meta, "nh": since}}
    due = now + timedelta(milliseconds=jobs.settings.store.no_handler_retry_delay_ms)
    jobs.store.enqueue(_queue(message, meta), Priority.parse(meta.get("p")), json.dumps(raw),
                       job_id, due=due, write=jobs.store.reschedule_record(now, due))


class BoundaryConsumer(Consumer):
    """Celery's consumer with Boundary's handling of messages it cannot run.

    The transport checked every field these hooks read (``shell.envelope``). When
    re-scheduling or dead-lettering fails, a lost connection requeues the message;
    anything else is the message's doing: it is dead-lettered (by the transport, as
    received, when even that fails here), never requeued to fail again at once.
    """

    @property
    def holdings(self) -> Holdings:
        """The worker's deliveries (made by its ``WorkerRuntime`` step; our own when
        this consumer runs without it)."""
        holder = self.controller if self.controller is not None else self
        holdings = getattr(holder, HOLDINGS_ATTR, None)
        if holdings is None:
            holdings = Holdings()
            setattr(holder, HOLDINGS_ATTR, holdings)
        return holdings

    def connection_for_read(self, heartbeat: Any = None) -> Any:
        """Celery's, carrying the worker's :class:`Holdings` to its channels."""
        connection = super().connection_for_read(heartbeat=heartbeat)
        setattr(connection, HOLDINGS_ATTR, self.holdings)
        return connection

    def on_close(self) -> None:
        # A reconnect: Celery forgets the requests its pool has not started; their leases
        # must lapse (or they would be renewed, and held, for good).
        released = self.holdings.release_unstarted(started_tags())
        if released:
            log.warning(event("Unstarted deliveries released after a lost connection",
                              count=released))
        super().on_close()

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        try:
            handle_unknown_job_type(jobs_of(self.app), message)
        except Exception as err:
            if is_connection_error(err, self.connection_errors):
                log.exception("could not re-schedule a message with no handler; requeued")
                message.reject_log_error(log, self.connection_errors, requeue=True)
                return
            log.exception("could not re-schedule a message with no handler")
            self._dead_letter(message, f"no handler for job type {exc}, and re-scheduling "
                                       f"the message failed: {err!r}")
            return
        message.ack()

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._dead_letter(message, f"invalid task message: {exc}")

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._dead_letter(message, f"undecodable message: {exc}")

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._dead_letter(message, "not a task message (no task name)")

    def _dead_letter(self, message: Any, reason: str) -> None:
        try:
            dead_letter_message(self.app, message, reason, "PoisonMessageError")
        except Exception as err:
            if not is_connection_error(err, self.connection_errors):
                raise  # the transport dead-letters the message as received
            log.exception("could not dead-letter a message; requeued")
            message.reject_log_error(log, self.connection_errors, requeue=True)
            return
        message.ack()


class BoundaryRequest(Request):
    """Counts outcomes for the worker's summary and dead-letters a task whose body the
    pool could not decode (JSON only, never pickle). Runs in the worker main process."""

    def on_retry(self, exc_info: Any) -> None:
        count("retried")
        super().on_retry(exc_info)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        # Celery's generated Request subclass handles success without calling super(),
        # so successes are derived from the accepted total (see logfmt.tally).
        exc = getattr(exc_info, "exception", None)
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, Ignore):
            count("skipped")
        elif not isinstance(exc, Retry | Reject):
            count("failed")
        if isinstance(exc, ContentDisallowed | DecodeError):
            try:
                dead_letter_message(self.app, self.message, f"undecodable message body: {exc}",
                                    "PoisonMessageError")
                return_ok = True
            except Exception:
                log.exception("could not dead-letter an undecodable message")
        if isinstance(exc, WorkerLostError | TimeLimitExceeded):
            lost = isinstance(exc, WorkerLostError)
            reason = exc if lost else self._hard_limit(exc.args[0] if exc.args else "?")
            if self._record_interrupted(reason, lost=lost):
                # Recorded, then retried or dead-lettered by the policy: ack (instead of
                # Celery's requeue, which loops forever on a job the OOM killer ends).
                task_ready(self)
                self.acknowledge()
                return
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        # A soft limit raises SoftTimeLimitExceeded in the handler (recorded there); a
        # hard one kills the pool child: its outcome is recorded here or in on_failure,
        # whichever Celery calls first.
        if soft:
            super().on_timeout(soft, timeout)
            return
        if self._record_interrupted(self._hard_limit(timeout), lost=False):
            log.warning(event("Hard time limit exceeded", job_id=self.id, job_type=self.name,
                              time_limit_s=timeout))
            task_ready(self)
            if not self.acknowledged:
                self.acknowledge()
            return
        super().on_timeout(soft, timeout)

    @staticmethod
    def _hard_limit(seconds: object) -> TimeLimitExceeded:
        return TimeLimitExceeded(f"hard time limit ({seconds} s) exceeded")

    def _record_interrupted(self, exc: BaseException, *, lost: bool) -> bool:
        """Record the attempt's outcome once; False if not ours or Redis is unreachable
        (Celery's own handling then applies: the job comes back, never lost)."""
        if getattr(self, "_boundary_recorded", False):
            return True
        try:
            recorded = record_interrupted(self, exc, lost=lost)
        except Exception as err:
            log.warning(event("Could not record an interrupted job", job_id=self.id,
                              error=repr(err)))
            return False
        self._boundary_recorded = recorded
        return recorded
