"""``BoundaryTask`` and ``@boundary_job``: Celery tasks that follow the Boundary lifecycle."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task
from celery.result import AsyncResult

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.validation import JobInput
from boundary_celery.shell.defaults import as_policy
from boundary_celery.shell.execution import run_delivery
from boundary_celery.shell.installed import jobs_of


class BoundaryTask(Task):
    """A Celery task whose every run is a Boundary job.

    ``apply_async``/``delay`` validate and publish through the installed ``Jobs``;
    in a worker, each delivery is recorded, retried with backoff or dead-lettered
    (see :mod:`boundary_celery.shell.execution`). Called directly, it runs inline.
    """

    abstract = True
    typing = False  # arguments are validated (and positionals bound) by apply_async
    ignore_result = True  # results live in the job store
    acks_late = True
    reject_on_worker_lost = True
    Request = "boundary_celery.shell.consumer:BoundaryRequest"

    boundary_queue: str = "default"
    boundary_priority: Priority = Priority.NORMAL
    boundary_max_retries: int | None = None
    boundary_retry_policy: RetryPolicy | None = None

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
        """Publish as a job. ``priority`` takes a level name or a Celery int (0-9);
        ``eta``/``countdown`` go to the boundary scheduler, never to a Celery ETA."""
        jobs = jobs_of(self.app)
        execute_at = _execute_at(options.pop("eta", None), options.pop("countdown", None))
        job, defaulted = jobs.prepare(
            self.name,
            self.bind_args(args or (), kwargs or {}),
            priority=options.pop("priority", None),
            queue=_queue_name(options.pop("queue", None)),
            max_retries=options.pop("max_retries", None),
            metadata=options.pop("metadata", None),
            tenant_id=options.pop("tenant_id", None),
            execute_at=execute_at,
            retry_policy=options.pop("retry_policy", None),
            job_id=task_id,
        )
        jobs.publish(job, defaulted=defaulted)
        return self.AsyncResult(str(job.id))

    def bind_args(
        self, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Positional arguments bound to the handler's parameter names (handlers take kwargs)."""
        if not args:
            return dict(kwargs)
        try:
            bound = inspect.signature(self.run).bind(*args, **kwargs)
        except TypeError as exc:
            raise JobValidationError("args", list(args), str(exc)) from exc
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            param = bound.signature.parameters[name]
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise JobValidationError("args", list(args), "handlers take keyword arguments")
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            else:
                out[name] = value
        return out


def _queue_name(queue: Any) -> str | None:
    if queue is None or isinstance(queue, str):
        return queue
    return str(getattr(queue, "name", queue))


def _execute_at(eta: Any, countdown: Any) -> datetime | None:
    if eta is not None:
        if isinstance(eta, str):
            eta = datetime.fromisoformat(eta)
        if not isinstance(eta, datetime):
            raise JobValidationError("eta", eta, "expected a datetime")
        return eta if eta.tzinfo else eta.replace(tzinfo=UTC)
    if countdown is not None:
        if isinstance(countdown, bool) or not isinstance(countdown, int | float):
            raise JobValidationError("countdown", countdown, "expected seconds")
        return datetime.now(UTC) + timedelta(seconds=float(countdown))
    return None


def job_options(
    name: str,
    *,
    queue: str = "default",
    priority: Priority | str | int = Priority.NORMAL,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | Mapping[str, Any] | str | None = None,
    **task_options: Any,
) -> dict[str, Any]:
    """Validated class attributes for a job type's task (fails at definition time)."""
    spec = JobInput.parse(
        {"job_type": name, "queue": queue, "priority": priority,
         **({"max_retries": max_retries} if max_retries is not None else {})}
    )
    return {
        "boundary_queue": spec.queue,
        "boundary_priority": spec.priority,
        "boundary_max_retries": max_retries,
        "boundary_retry_policy": as_policy(retry_policy),
        **task_options,
    }


def boundary_job(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a job handler: ``@boundary_job`` or ``@boundary_job(queue=..., priority=...)``.

    The job type is the function name unless ``name=`` is given. Like Celery's
    ``shared_task`` it works before or after :func:`boundary_celery.install`.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        name = options.pop("name", None) or func.__name__
        return shared_task(name=name, base=BoundaryTask, **job_options(name, **options))(func)

    return decorate(fn) if fn is not None else decorate
