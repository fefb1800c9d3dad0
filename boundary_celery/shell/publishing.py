"""Every task message an installed app publishes is a job's message.

:class:`BoundaryAMQP` (the app's ``amqp_cls``) wraps Celery's ``send_task_message``, the
one function every publish goes through (``delay``/``apply_async``, ``send_task``,
canvas, ``self.retry()``, beat). Before kombu publishes a task message it:

- takes the job the publisher already built (``Jobs``, ``BoundaryTask``), or builds and
  validates it from the message (a plain ``@app.task``);
- sets the message priority to the level's Celery integer (unset: the job type's level,
  else normal), so every task has the same priority meaning; an integer the publisher
  gave is kept as it is (Celery reports it back), its pair's list and level are the same;
- adds the ``boundary`` header and the record write (a new record, or a retry's);
- turns a future ``eta`` (``countdown``, ``eta``, a retry's delay) into the due time: the
  transport holds the message in the scheduled set, never as a Celery ETA message.

Bad input (args over ``[store] max_args_bytes``, a queue that is not a name) raises
``JobValidationError`` before anything is sent; a broker that refuses or does not answer
in time raises :class:`~boundary_celery.shell.timeouts.BrokerPublishError`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from celery.app.amqp import AMQP
from celery.app.routes import Router
from kombu import Queue

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import Job, JobError
from boundary_celery.core.status import JobStatus
from boundary_celery.shell import wire
from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.connection import BoundaryConnection
from boundary_celery.shell.timeouts import broker_error

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

#: The error of the attempt whose retry is being published (set by ``BoundaryTask.retry``).
_retry_error: ContextVar[JobError | None] = ContextVar("boundary_retry_error", default=None)


def current_retry_error() -> JobError | None:
    """The error set by an enclosing :func:`retrying_after`, if any."""
    return _retry_error.get()


@contextmanager
def retrying_after(error: JobError | None) -> Iterator[None]:
    """Record ``error`` on the retry published inside the block."""
    token = _retry_error.set(error)
    try:
        yield
    finally:
        _retry_error.reset(token)


@lru_cache(maxsize=4096)
def _signature(run: Any) -> inspect.Signature:
    return inspect.signature(run)


def record_args(task: Any, args: Any, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job's ``args`` object for a call: keyword arguments, with positional ones bound
    to the handler's parameter names; ``{"args": [...], "kwargs": {...}}`` when they cannot
    be named (``*args``, or no handler known here).

    Arguments the handler does not take raise JobValidationError naming them, unless the
    task opted out of Celery's argument check (``typing=False``)."""
    kwargs = dict(kwargs or {})
    args = list(args or ())
    run = getattr(task, "run", None)
    unnamed = {"args": args, "kwargs": kwargs} if args else kwargs
    if run is None:
        return unnamed
    try:
        bound = _signature(run).bind(*args, **kwargs)
    except TypeError as exc:
        if getattr(task, "typing", True) is False:
            return unnamed
        raise JobValidationError("args", unnamed, str(exc)) from exc
    if not args:
        return kwargs
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            return {"args": args, "kwargs": kwargs}
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def message_args(job_args: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of a job's message (inverse of
    :func:`record_args`)."""
    if set(job_args) == {"args", "kwargs"} and isinstance(job_args["args"], list) \
            and isinstance(job_args["kwargs"], dict):
        return list(job_args["args"]), dict(job_args["kwargs"])
    return [], dict(job_args)


def _eta(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise JobValidationError("eta", value, "expected an ISO 8601 time") from exc
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _check_queue_option(queue: Any) -> None:
    """A ``queue`` option is a non-empty name or a kombu Queue (or None)."""
    if queue is None or isinstance(queue, Queue) or (isinstance(queue, str) and queue):
        return
    raise JobValidationError("queue", queue, "expected a queue name or a kombu Queue")


def _queue_name(jobs: Jobs, options: Mapping[str, Any]) -> str:
    queue = options.get("queue")
    if queue is not None:
        _check_queue_option(queue)
        return str(getattr(queue, "name", queue))
    return str(options.get("routing_key") or jobs.app.conf.task_default_queue)


def job_of_message(jobs: Jobs, name: str, headers: dict[str, Any], body: Any,
                   options: Mapping[str, Any]) -> Job:
    """Build and validate the job a plain Celery task message carries."""
    task = jobs.app.tasks.get(name)
    args, kwargs = (body[0], body[1]) if isinstance(body, tuple | list) else ((), {})
    meta = headers.get(wire.META) or {}
    job, _ = jobs.prepare(
        name,
        record_args(task, args, kwargs),
        priority=options.get("priority"),
        queue=_queue_name(jobs, options),
        max_retries=meta.get("mr"),
        metadata=meta.get("m"),
        tenant_id=meta.get("t"),
        retry_policy=meta.get("rp"),
        execute_at=_eta(headers.get("eta")),
        job_id=headers.get("id"),
        retry_count=int(headers.get("retries") or 0),
    )
    return job


def finish_headers(jobs: Jobs, job: Job, headers: dict[str, Any], *,
                   defaulted: tuple[str, ...] = (), now: datetime | None = None) -> None:
    """Add the ``boundary`` header, the record write and the due time of ``job``'s message
    (an explicit record write already in ``headers`` is kept)."""
    now = now or utcnow()
    headers.setdefault(wire.PUBLISH, os.urandom(8).hex())  # kombu's retry resends it
    due = _eta(headers.get("eta")) or job.execute_at
    headers["eta"] = None  # the scheduler holds the message: never a Celery ETA
    if due is not None and due > now:
        headers[wire.DUE] = epoch_ms(due)
    else:
        due = None
    old = headers.get(wire.META) or {}
    headers[wire.META] = wire.message_meta(job, no_handler_since=old.get("nh"),
                                           defaulted=old.get("d") or defaulted)
    if wire.WRITE in headers:
        return
    if job.retry_count == 0:
        headers[wire.WRITE] = jobs.store.new_record(job)
        return
    retry = job.model_copy(update={"status": JobStatus.RETRYING,
                                   "error": _retry_error.get() or job.error})
    headers[wire.WRITE] = jobs.store.retry_record(retry, now, due or now)


def prepare_message(jobs: Jobs, name: str, message: Any, options: dict[str, Any]) -> None:
    """Make a Celery task message a job's message (in place; see the module docstring)."""
    headers, _, body, _ = message
    headers.update(options.pop("headers", None) or {})
    job = headers.pop(wire.JOB, None)
    if job is None:
        job = job_of_message(jobs, name, headers, body, options)
    options["priority"] = job.priority.celery_keeping(options.get("priority"))
    finish_headers(jobs, job, headers)


class BoundaryRouter(Router):  # type: ignore[misc]
    """Celery's task router; a ``queue`` option that is not a name or a kombu Queue raises
    JobValidationError (Celery's own fails on it with a TypeError or later in kombu)."""

    def route(self, options: dict[str, Any], name: str, *args: Any, **kwargs: Any) -> Any:
        _check_queue_option(options.get("queue"))
        return super().route(options, name, *args, **kwargs)


class BoundaryAMQP(AMQP):
    """Celery's AMQP with a ``send_task_message`` that publishes jobs, and connections
    that keep Boundary's transport on failover (:class:`BoundaryConnection`)."""

    Connection = BoundaryConnection

    def Router(self, queues: Any = None, create_missing: Any = None) -> BoundaryRouter:
        """Celery's router, with the ``queue`` option checked (:class:`BoundaryRouter`)."""
        return BoundaryRouter(self.routes, queues or self.queues,
                              self.app.either("task_create_missing_queues", create_missing),
                              app=self.app)

    def _create_task_sender(self) -> Any:
        send = super()._create_task_sender()  # type: ignore[misc]
        app = self.app

        def send_task_message(producer: Any, name: str, message: Any, *args: Any,
                              **options: Any) -> Any:
            jobs = getattr(app, "boundary", None)
            if jobs is not None:
                prepare_message(jobs, name, message, options)
            try:
                return send(producer, name, message, *args, **options)
            except Exception as exc:
                error = broker_error(app.conf, exc)
                if error is None or error is exc:
                    raise
                raise error from exc

        return send_task_message
