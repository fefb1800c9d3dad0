"""The scheduler: publishes due delayed jobs and retries from the Redis sorted set.

Each pass runs ``move_due.lua``, which moves due messages from the set to their lists
atomically, so any number of schedulers may run and a killed one loses nothing. It
runs embedded in every worker (a bootstep, on by default) and standalone as
``celery -A app boundary scheduler``; in a worker the same loop beats its heartbeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.logfmt import event

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

log = logging.getLogger("boundary_celery.scheduler")


class SchedulerLoop:
    """Move due jobs every ``interval_ms`` until stopped; optional heartbeat per pass."""

    def __init__(
        self,
        jobs: Jobs,
        *,
        interval_ms: int | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.interval_s = (interval_ms or jobs.settings.scheduler.interval_ms) / 1000
        self.heartbeat = heartbeat
        self.stopped = threading.Event()
        self.moved_total = 0
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass: publish every job due now; returns how many moved."""
        moved = self.jobs.process_scheduled_jobs(utcnow())
        self.moved_total += moved
        if moved:
            log.debug(event("Scheduled jobs published", count=moved))
        return moved

    def run(self, max_passes: int | None = None) -> None:
        """Loop until :meth:`stop` (or ``max_passes``); errors are logged, never fatal."""
        passes = 0
        while not self.stopped.is_set():
            if self.heartbeat is not None:
                try:
                    self.heartbeat()
                except Exception:  # a missed beat must not hold up due jobs
                    log.exception("heartbeat failed; retrying next interval")
            try:
                self.run_once()
            except Exception:
                log.exception("scheduler pass failed; retrying next interval")
            passes += 1
            if max_passes is not None and passes >= max_passes:
                return
            self.stopped.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="boundary-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)
