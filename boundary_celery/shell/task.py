"""``BoundaryTask``, the base of every task of an installed app, and ``@boundary_job``.

``install(app)`` makes ``BoundaryTask`` the app's task base, so ``@app.task`` and
``shared_task`` tasks are jobs too: each delivery is recorded and settled (see
:mod:`boundary_celery.shell.execution`), while Celery's contracts (results, canvas, the
retry API, task names) keep their meaning. A job type *declared* with ``@boundary_job``
or ``@app.task(boundary={...})`` also gets Boundary's retry policy and failure shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task
from celery.result import AsyncResult

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.outcome import error_from_exception
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.validation import JobInput
from boundary_celery.shell import wire
from boundary_celery.shell.defaults import as_policy
from boundary_celery.shell.execution import run_delivery
from boundary_celery.shell.publishing import current_retry_error, retrying_after
from boundary_celery.shell.retry_publish import publish_retry

#: ``apply_async`` options that are Boundary's, not Celery's (they go in the header).
_META_OPTIONS = {"tenant_id": "t", "metadata": "m", "max_retries": "mr", "retry_policy": "rp"}


class BoundaryTask(Task):
    """A Celery task whose every run is a Boundary job.

    Publishing is Celery's (``apply_async`` adds Boundary's options: a priority name,
    ``tenant_id``, ``metadata``, ``max_retries``, ``retry_policy``, ``execute_at``); every
    message becomes a job's in :mod:`~boundary_celery.shell.publishing`.
    """

    abstract = True
    Request = "boundary_celery.shell.consumer:BoundaryRequest"

    #: True for a declared job type: Boundary's retry policy and failure shape apply.
    boundary_declared: bool = False
    boundary_queue: str | None = None
    boundary_priority: Priority = Priority.NORMAL
    boundary_max_retries: int | None = None
    boundary_retry_policy: RetryPolicy | None = None
    #: Older names whose messages this task runs (registered when the app finalizes).
    boundary_aliases: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``@app.task(boundary={...})``: the job options, validated at definition."""
        super().__init_subclass__(**kwargs)
        options = cls.__dict__.get("boundary")
        if isinstance(options, Mapping):
            name = str(cls.__dict__.get("name") or cls.__name__)
            for key, value in job_options(name, **options).items():
                setattr(cls, key, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:
            return self.run(*args, **kwargs)
        return run_delivery(self, args, kwargs)

    def apply_async(  # type: ignore[override]
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Celery's ``apply_async``. ``priority`` also takes a level name (Celery ints map
        in pairs: 0-1 critical ... 8-9 bulk); ``execute_at``, ``eta`` and ``countdown`` go
        to the boundary scheduler; ``tenant_id``, ``metadata``, ``max_retries`` and
        ``retry_policy`` are the job's."""
        if args is not None and not isinstance(args, list | tuple):
            raise JobValidationError("args", args, "expected a list or tuple of arguments")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise JobValidationError("kwargs", kwargs, "expected a mapping")
        if getattr(self.app, "boundary", None) is not None:
            _boundary_options(self, options)
        return super().apply_async(
            tuple(args) if args is not None else None,
            dict(kwargs) if kwargs is not None else None,
            task_id, producer, link, link_error, shadow, **options)

    def retry(  # type: ignore[override]
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``retry``: the retry keeps the job's header (tenant, metadata, policy)
        and the record gets this attempt's error; it waits in the boundary scheduler. A
        publish Redis cannot take is tried again, never dropped (``retry_publish``)."""
        meta = getattr(self.request, wire.META, None)
        if meta is not None:
            # Celery's retry keeps the request's custom headers unless given new ones;
            # ours joins them (a headers option would replace them), never our transient
            # receipt headers.
            headers = options.pop("headers", None)
            if headers is None:
                headers = self.request.as_execution_options().get("headers")
            headers = {k: v for k, v in dict(headers or {}).items() if k not in wire.TRANSIENT}
            headers.setdefault(wire.META, meta)
            options["headers"] = headers
        error = current_retry_error() or (
            error_from_exception(exc) if isinstance(exc, BaseException) else None)
        with retrying_after(error):
            return publish_retry(lambda: super(BoundaryTask, self).retry(
                args, kwargs, exc, throw, eta, countdown, max_retries, **options))


def _boundary_options(task: BoundaryTask, options: dict[str, Any]) -> None:
    """Turn Boundary's ``apply_async`` options into Celery options and the job header."""
    headers = options.pop("headers", None) or {}
    if not isinstance(headers, Mapping):
        raise JobValidationError("headers", headers, "expected a mapping")
    headers = dict(headers)
    meta = headers.get(wire.META) or {}
    if not isinstance(meta, Mapping):
        raise JobValidationError(f"headers.{wire.META}", meta, "expected a mapping")
    meta = dict(meta)
    for option, key in _META_OPTIONS.items():
        value = options.pop(option, None)
        if value is None:
            continue
        if option == "retry_policy":
            policy = as_policy(value)
            value = policy.model_dump(mode="json") if policy is not None else None
        meta[key] = value
    if meta:
        headers[wire.META] = meta
    if headers:
        options["headers"] = headers
    execute_at = _execute_at(options.pop("execute_at", None), options.pop("eta", None),
                             options.pop("countdown", None))
    if execute_at is not None:
        options["eta"] = execute_at
    priority = options.get("priority")
    if isinstance(priority, str | Priority):
        options["priority"] = Priority.parse(priority).celery
    queue = options.get("queue")
    if queue is None and task.boundary_queue is not None:
        options["queue"] = task.boundary_queue


#: The longest ``countdown`` accepted (about 100 years).
MAX_COUNTDOWN_S = 100 * 365 * 24 * 3600


def _execute_at(execute_at: Any, eta: Any, countdown: Any) -> datetime | None:
    if execute_at is not None or eta is not None:
        field = "execute_at" if execute_at is not None else "eta"
        moment = execute_at if execute_at is not None else eta
        if isinstance(moment, str):
            try:
                moment = datetime.fromisoformat(moment)
            except ValueError as exc:
                raise JobValidationError(field, moment, "expected an ISO 8601 time") from exc
        if not isinstance(moment, datetime):
            raise JobValidationError(field, moment, "expected a datetime")
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if countdown is not None:
        if (isinstance(countdown, bool) or not isinstance(countdown, int | float)
                or not math.isfinite(countdown) or abs(countdown) > MAX_COUNTDOWN_S):
            raise JobValidationError("countdown", countdown,
                                     f"expected seconds, at most {MAX_COUNTDOWN_S}")
        return datetime.now(UTC) + timedelta(seconds=float(countdown))
    return None


def job_options(
    name: str,
    *,
    queue: str | None = None,
    priority: Priority | str | int = Priority.NORMAL,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | Mapping[str, Any] | str | None = None,
    aliases: tuple[str, ...] | list[str] = (),
    timeout_ms: int | None = None,
    **task_options: Any,
) -> dict[str, Any]:
    """Validated class attributes of a declared job type (fails at definition time).
    ``timeout_ms`` (the guide's job timeout) is Celery's hard ``time_limit``."""
    if timeout_ms is not None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
            raise JobValidationError("timeout_ms", timeout_ms, "must be a positive integer")
        task_options.setdefault("time_limit", timeout_ms / 1000)
    spec = JobInput.parse(
        {"job_type": name, "priority": priority,
         **({"queue": queue} if queue is not None else {}),
         **({"max_retries": max_retries} if max_retries is not None else {})}
    )
    return {
        "boundary_declared": True,
        "boundary_queue": spec.queue if queue is not None else None,
        "boundary_priority": spec.priority,
        "boundary_max_retries": max_retries,
        "boundary_retry_policy": as_policy(retry_policy),
        "boundary_aliases": tuple(aliases),
        **task_options,
    }


def boundary_job(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a job type: ``@boundary_job`` or ``@boundary_job(queue=..., priority=...)``.

    The job type is the task name: Celery's default (``module.function``) unless
    ``name=`` is given, so converting an ``@app.task`` keeps its name and the messages
    already in flight. ``aliases=[...]`` also routes old names to it. Like Celery's
    ``shared_task`` it works before or after :func:`boundary_celery.install`.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        name = options.pop("name", None)
        label = name or f"{func.__module__}.{func.__name__}"
        return shared_task(name=name, base=BoundaryTask, **job_options(label, **options))(func)

    return decorate(fn) if fn is not None else decorate
