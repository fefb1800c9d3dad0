"""A warm shutdown that ends: ``[workers] shutdown_timeout_ms`` (the guide's graceful
shutdown timeout) bounds how long a worker waits for its running jobs after SIGTERM.

Celery's warm shutdown waits for every running job however long it takes
(``worker_soft_shutdown_timeout`` bounds only a cold one). When a warm shutdown starts
(``worker_shutting_down``, in the worker's main process), a timer is armed; if the
worker is still there when it fires, it sends itself SIGQUIT, Celery's cold shutdown:
the pool's jobs are stopped and run again by another worker, handed back as they were
or retried as interrupted attempts (tests/e2e/test_shutdown.py).

Celery 5.5+'s SIGQUIT handler stops the running jobs itself (``on_cold_shutdown`` in
celery/apps/worker.py cancels the active requests). Celery 5.4's only sets
``state.should_terminate``, which the event loop reads (``state.maybe_shutdown`` in
celery/worker/loops.py): once the warm shutdown has left the loop and waits in the
pool's ``close()``/``join()`` (``WorkController.stop`` -> ``blueprint.stop`` ->
``TaskPool.on_stop``), nothing reads it and the jobs run to their end. There the timer
stops them itself: SIGTERM to the pool child of each active request, what Celery's
``Request.cancel`` sends, marked as a controlled termination so that billiard does not
log it as an error (``Pool._join_exited_workers``); the main process records each job as
an interrupted attempt (``WorkerLostError``, shell/interrupted.py), retried by its policy.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery import signals
from celery.apps import worker as celery_worker_app
from celery.worker import state

from boundary_celery.shell.logfmt import event

log = logging.getLogger("boundary_celery.worker")

#: ``[shutdown_timeout_ms]`` of the worker in this process (set by the worker bootstep);
#: empty in any other process.
_timeout_ms: list[int] = []

#: The ``WorkController`` of this process (``worker_init``); empty in any other process.
_worker: list[Any] = []

#: Whether Celery's SIGQUIT handler stops running jobs during a warm shutdown (5.5+).
_COLD_SHUTDOWN_STOPS_JOBS = hasattr(celery_worker_app, "on_cold_shutdown")


def arm(timeout_ms: int) -> None:
    """Bound the next warm shutdown of this worker process to ``timeout_ms``."""
    _timeout_ms[:] = [timeout_ms]


def _running_children() -> set[int]:
    """The pool children running this worker's jobs that can still run again elsewhere
    (as Celery 5.5+'s ``Consumer.cancel_active_requests`` chooses: not a job whose
    message is acknowledged, nor one that already succeeded)."""
    pids = set()
    for request in tuple(state.active_requests):
        pid = getattr(request, "worker_pid", None)
        if not pid or pid == os.getpid():  # not started, or run in this process (solo)
            continue
        if request.id in state.successful_requests or getattr(request, "acknowledged", False):
            continue
        pids.add(pid)
    return pids


def _pool_processes() -> dict[int, Any]:
    """billiard's pool children of this worker by pid (none once the pool has stopped)."""
    pool = getattr(_worker[0], "pool", None) if _worker else None
    processes = getattr(getattr(pool, "_pool", None), "_pool", None) or ()
    return {process.pid: process for process in list(processes)}


def _stop_jobs() -> None:
    processes = _pool_processes()
    for pid in sorted(_running_children()):
        if pid in processes:
            processes[pid]._controlled_termination = True  # as billiard's terminate_job
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:  # the job ended meanwhile
            continue


def _cold_shutdown(timeout_ms: int) -> None:
    log.warning(event("Shutdown timeout reached: stopping the running jobs",
                      shutdown_timeout_ms=timeout_ms,
                      consequence="their deliveries go to another worker"))
    if not _COLD_SHUTDOWN_STOPS_JOBS:
        _stop_jobs()  # first: marked before Celery 5.4's own cold shutdown may kill them
    os.kill(os.getpid(), signal.SIGQUIT)


@signals.worker_init.connect(weak=False)
def _keep_worker(sender: Any = None, **_: Any) -> None:
    _worker[:] = [sender]


@signals.worker_shutting_down.connect(weak=False)
def _on_shutting_down(sender: Any = None, how: str | None = None, **_: Any) -> None:
    if how != "Warm" or not _timeout_ms:
        return
    timeout_ms = _timeout_ms[0]
    timer = threading.Timer(timeout_ms / 1000, _cold_shutdown, args=(timeout_ms,))
    timer.daemon = True  # the worker exits before it fires when its jobs end in time
    timer.name = "boundary-shutdown-timeout"
    timer.start()
