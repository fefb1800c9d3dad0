"""Cancellation through Celery's revoke, recorded on the job, and the handler's view of it.

- :class:`BoundaryControl` (the app's ``control_cls`` after install()): ``revoke`` first
  cancels each job in the store (a waiting or scheduled job reads ``cancelled`` at once and
  never runs; a running one gets its cancellation requested), then broadcasts as Celery does.
- the ``task_revoked`` handler: a delivery a worker skipped because it was revoked (the
  consumer had already marked it running on receipt), or killed with ``terminate=True``,
  is recorded ``cancelled``; one skipped because its Celery ``expires`` passed is
  recorded ``cancelled`` with the reason (error type ``JobExpired``), its record made
  first when the producer wrote none (a producer without ``install()``).
- :func:`cancel_requested`: whether the running job's cancellation was requested, for a
  handler that stops early (it then raises ``JobCancelledError``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app, current_task, signals
from celery.app.control import Control
from celery.utils.functional import maybe_list
from kombu.utils.imports import symbol_by_name

from boundary_celery.core.job import JobError
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.context import current_job
from boundary_celery.shell.execution import job_from_delivery
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.persist import persisting

log = logging.getLogger("boundary_celery.worker")

#: Celery's default signal for ``revoke(terminate=True)``.
TERM_SIGNAME = "SIGTERM"


class BoundaryControl(Control):
    """Celery's remote control, whose ``revoke`` is recorded on the jobs first."""

    def revoke(self, task_id: Any, destination: Any = None, terminate: bool = False,
               signal: str = TERM_SIGNAME, **kwargs: Any) -> Any:
        """Cancel each job in the store (see the module docstring), then broadcast."""
        jobs = getattr(self.app, "boundary", None)
        if jobs is not None:
            now = utcnow()
            for jid in maybe_list(task_id):
                jobs.store.cancel(str(jid), now)
        return self.broadcast_revoke(task_id, destination, terminate, signal, **kwargs)

    def broadcast_revoke(self, task_id: Any, destination: Any = None, terminate: bool = False,
                         signal: str = TERM_SIGNAME, **kwargs: Any) -> Any:
        """Celery's own ``revoke``: the broadcast to the workers only."""
        return super().revoke(task_id, destination=destination, terminate=terminate,
                              signal=signal, **kwargs)


def install_control(app: Any) -> None:
    """Make ``app.control`` a :class:`BoundaryControl` (combined with a custom class)."""
    current = symbol_by_name(app.control_cls)
    if issubclass(current, BoundaryControl):
        return
    app.control_cls = (BoundaryControl if current is Control else
                       type("BoundaryControl", (BoundaryControl, current),
                            {"__module__": __name__}))
    app.__dict__.pop("control", None)  # cached_property: rebuilt from control_cls


def broadcast_revoke(app: Any, job_id: str, *, terminate: bool = False) -> None:
    """Tell the workers to skip ``job_id`` (or kill it, ``terminate``) without touching
    the store (the caller has recorded the cancellation)."""
    control = app.control
    if isinstance(control, BoundaryControl):
        control.broadcast_revoke(job_id, terminate=terminate)
    else:
        control.revoke(job_id, terminate=terminate)


def cancel_requested() -> bool:
    """True when cancelling the job this handler runs was requested (one Redis read);
    False outside a job. A handler that stops for it raises ``JobCancelledError``."""
    ctx = current_job()
    if ctx is None:
        return False
    app = getattr(current_task, "app", None) or current_app
    jobs = getattr(app, "boundary", None)
    if jobs is None:
        return False
    return bool(jobs.store.cancel_requested(ctx.job_id))


@signals.task_revoked.connect(weak=False)
def _on_task_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
                     expired: bool = False, **_: Any) -> None:
    """Record a delivery the worker skipped or killed as cancelled (runs in the worker's
    main process; a job that finished already is left alone)."""
    jobs = getattr(getattr(sender, "app", None), "boundary", None)
    job_id = getattr(request, "id", None)
    if jobs is None or not job_id:
        return
    now = utcnow()
    reason = None
    if expired:
        expires = getattr(request, "expires", None)
        reason = JobError(type="JobExpired",
                          message=f"expired: not started before {expires} (Celery expires)")
    try:
        done = persisting(lambda: jobs.store.cancel(str(job_id), now, stopped=True,
                                                    reason=reason),
                          what="record a cancellation")
        if done is None and expired:  # no record: published without install()
            # ``request`` is the delivery's Celery context (Request._context).
            job = job_from_delivery(sender, tuple(request.args or ()),
                                    dict(request.kwargs or {}), req=request, strict=False)
            persisting(lambda: jobs.store.save_job(job), what="record a cancellation")
            done = persisting(lambda: jobs.store.cancel(str(job_id), now, stopped=True,
                                                        reason=reason),
                              what="record a cancellation")
    except Exception as exc:
        log.warning(event("Could not record a revoked job", job_id=job_id, error=repr(exc)))
        return
    if done is not None:
        _, job = done
        log.info(event("Job revoked", job_id=job_id, job_type=job.job_type,
                       status=job.status.value, terminated=terminated, expired=expired))
