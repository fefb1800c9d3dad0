"""A warm shutdown that ends: ``[workers] shutdown_timeout_ms`` (the guide's graceful
shutdown timeout) bounds how long a worker waits for its running jobs after SIGTERM.

Celery's warm shutdown waits for every running job however long it takes
(``worker_soft_shutdown_timeout`` bounds only a cold one). When a warm shutdown starts
(``worker_shutting_down``, in the worker's main process), a timer is armed; if the
worker is still there when it fires, it sends itself SIGQUIT, Celery's cold shutdown:
the pool's jobs are stopped and run again by another worker, handed back as they were
or retried as interrupted attempts (tests/e2e/test_shutdown.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery import signals

from boundary_celery.shell.logfmt import event

log = logging.getLogger("boundary_celery.worker")

#: ``[shutdown_timeout_ms]`` of the worker in this process (set by the worker bootstep);
#: empty in any other process.
_timeout_ms: list[int] = []


def arm(timeout_ms: int) -> None:
    """Bound the next warm shutdown of this worker process to ``timeout_ms``."""
    _timeout_ms[:] = [timeout_ms]


def _cold_shutdown(timeout_ms: int) -> None:
    log.warning(event("Shutdown timeout reached: stopping the running jobs",
                      shutdown_timeout_ms=timeout_ms,
                      consequence="their deliveries go to another worker"))
    os.kill(os.getpid(), signal.SIGQUIT)


@signals.worker_shutting_down.connect(weak=False)
def _on_shutting_down(sender: Any = None, how: str | None = None, **_: Any) -> None:
    if how != "Warm" or not _timeout_ms:
        return
    timeout_ms = _timeout_ms[0]
    timer = threading.Timer(timeout_ms / 1000, _cold_shutdown, args=(timeout_ms,))
    timer.daemon = True  # the worker exits before it fires when its jobs end in time
    timer.name = "boundary-shutdown-timeout"
    timer.start()
