"""A worker's heartbeat: its name in the store's worker set, refreshed every interval,
so ``job_stats().active_workers`` counts the workers that are alive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from boundary_celery.shell.clock import utcnow

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs


class Heartbeat:
    """Beats at most once per ``heartbeat_interval_s``; a worker silent for three
    intervals is forgotten."""

    def __init__(self, jobs: Jobs, worker: str) -> None:
        self.jobs = jobs
        self.worker = worker
        self.every_s = jobs.settings.workers.heartbeat_interval_s
        self.ttl_ms = self.every_s * 3 * 1000
        self._last = 0.0

    def __call__(self) -> None:
        """Beat if the interval has passed since the last beat."""
        now = utcnow()
        if now.timestamp() - self._last >= self.every_s:
            self.jobs.store.heartbeat(self.worker, now, self.ttl_ms)
            self._last = now.timestamp()

    def stop(self) -> None:
        """Forget this worker now (a clean stop)."""
        self.jobs.store.worker_gone(self.worker)
