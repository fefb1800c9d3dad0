"""Where an app's installed :class:`~boundary_celery.shell.jobs.Jobs` lives: ``app.boundary``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs


def jobs_of(app: Any) -> Jobs:
    """The ``Jobs`` installed on ``app``; a clear error when install() was not called."""
    jobs = getattr(app, "boundary", None)
    if jobs is None:
        raise RuntimeError(
            f"boundary_celery.install(app) has not been called for Celery app {app.main!r}"
        )
    return jobs  # type: ignore[no-any-return]


def attach(app: Any, jobs: Jobs) -> None:
    """Make ``jobs`` the one :func:`jobs_of` returns for ``app``."""
    app.boundary = jobs
