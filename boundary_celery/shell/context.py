"""The running job, available to handlers through :func:`current_job`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from boundary_celery.core.priority import Priority

#: ``hook(tenant_id)`` returns a context manager wrapping the handler; it raises
#: :class:`~boundary_celery.core.errors.UnknownTenantError` for an unknown tenant.
TenantHook = Callable[[str], AbstractContextManager[Any]]


@dataclass(frozen=True)
class JobContext:
    """What a handler may ask about the job it is running."""

    job_id: str
    job_type: str
    queue: str
    priority: Priority
    tenant_id: str | None
    retry_count: int
    max_retries: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self.retry_count + 1


_current: ContextVar[JobContext | None] = ContextVar("boundary_current_job", default=None)


def current_job() -> JobContext | None:
    """The job being run by this worker thread, or None outside a job."""
    return _current.get()


def current_tenant() -> str | None:
    """The running job's tenant id, or None."""
    ctx = _current.get()
    return ctx.tenant_id if ctx else None


@contextmanager
def job_context(ctx: JobContext) -> Iterator[JobContext]:
    """Make ``ctx`` the current job for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
