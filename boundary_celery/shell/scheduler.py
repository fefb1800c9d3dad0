"""The scheduler: publishes due delayed jobs and retries from the Redis sorted set.

Each pass runs ``move_due.lua``, which moves due messages from the set to their lists
atomically, so any number of schedulers may run and a killed one loses nothing. It
runs embedded in every worker (a bootstep, on by default) and standalone as
``celery -A app boundary scheduler``. The same loop writes the worker heartbeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import bootsteps

from boundary_celery.adapters.redis_records import to_ms
from boundary_celery.shell.execution import begin_hook
from boundary_celery.shell.install import jobs_of
from boundary_celery.shell.jobs import Jobs, utcnow
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.transport import QoS

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
            try:
                if self.heartbeat is not None:
                    self.heartbeat()
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


class WorkerScheduler(bootsteps.StartStopStep):
    """Worker bootstep: embedded scheduler plus this worker's heartbeat."""

    label = "boundary scheduler"  # also: heartbeat, metrics port, consumer begin hook
    # Start after the pool has forked its children, so no thread of ours is running
    # (and possibly holding an import or logging lock) when a child is created.
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.loop: SchedulerLoop | None = None
        self.metrics_server: Any = None

    def start(self, worker: Any) -> None:
        jobs = jobs_of(worker.app)
        hostname = worker.hostname
        QoS.begin_hook = begin_hook(jobs, hostname)  # before the consumer starts (it is last)
        ttl_ms = jobs.settings.workers.heartbeat_interval_s * 3 * 1000
        embedded = jobs.settings.scheduler.enabled
        heartbeat_every_s = jobs.settings.workers.heartbeat_interval_s
        last = [0.0]

        def heartbeat() -> None:
            now = utcnow()
            if now.timestamp() - last[0] >= heartbeat_every_s:
                jobs.store.heartbeat(hostname, to_ms(now), ttl_ms)
                last[0] = now.timestamp()

        interval = jobs.settings.scheduler.interval_ms if embedded else heartbeat_every_s * 1000
        self.loop = SchedulerLoop(jobs, interval_ms=interval, heartbeat=heartbeat)
        if not embedded:
            self.loop.run_once = lambda: 0  # type: ignore[method-assign]
        heartbeat()  # first pass in the main thread: lazy imports happen here, not
        self.loop.run_once()  # in the thread while a pool child may be forked
        self.loop.start()
        port = jobs.settings.workers.metrics_port
        if port is not None:
            from boundary_celery.admin.metrics import start_worker_metrics_server

            self.metrics_server, _ = start_worker_metrics_server(
                jobs, port, addr=jobs.settings.admin.host
            )
            log.info(event("Metrics served", worker=hostname, port=port))
        log.info(event("Scheduler started", worker=hostname, embedded=embedded,
                       interval_ms=interval))

    def stop(self, worker: Any) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self.loop is not None:
            self.loop.stop()
            try:
                jobs_of(worker.app).store.worker_gone(worker.hostname)
            except Exception:
                log.exception("could not remove the worker heartbeat")
