"""A worker's heartbeat: its name in the store's worker set, and the lease on every
delivery it holds, renewed every interval by a thread of its own.

``job_stats().active_workers`` counts the workers that beat recently. A delivery whose
lease is not renewed for ``workers.lease_s`` (its worker died) is delivered again by
the transport's sweep (``transport.QoS.restore_visible``); a live worker renews its
leases however long its jobs run. One round trip per worker per interval, whatever
the number of deliveries it holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.logfmt import event

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

log = logging.getLogger("boundary_celery.worker")


def _no_leases() -> Sequence[str]:
    return ()


class Heartbeat:
    """Beats at most once per ``heartbeat_interval_s``; a worker silent for three
    intervals is forgotten. ``leases()`` gives the delivery tags to renew."""

    def __init__(self, jobs: Jobs, worker: str,
                 leases: Callable[[], Sequence[str]] = _no_leases) -> None:
        self.jobs = jobs
        self.worker = worker
        self.leases = leases
        self.every_s = jobs.settings.workers.heartbeat_interval_s
        self.ttl_ms = self.every_s * 3 * 1000
        self._last = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self) -> None:
        """Beat if the interval has passed since the last beat."""
        now = utcnow()
        if now.timestamp() - self._last >= self.every_s:
            self.jobs.store.heartbeat(self.worker, now, self.ttl_ms, leases=self.leases())
            self._last = now.timestamp()

    def run(self) -> None:
        """Beat every interval until :meth:`stop`; a failed beat is retried sooner."""
        while not self._stopped.is_set():
            try:
                self()
                wait = float(self.every_s)
            except Exception as exc:
                log.warning(event("Heartbeat failed; retrying", worker=self.worker,
                                  error=repr(exc)))
                wait = min(1.0, self.every_s)
            self._stopped.wait(wait)

    def start(self) -> None:
        """Beat in a daemon thread (a blocked event loop or pool never delays a lease)."""
        self._thread = threading.Thread(target=self.run, name="boundary-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and forget this worker now (a clean stop)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.jobs.store.worker_gone(self.worker)
