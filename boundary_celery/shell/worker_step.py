"""The worker bootstep that starts boundary-celery's runtime pieces in a worker.

In order: the consumer's ``begin`` hook (``receipt``), the heartbeat, the embedded
scheduler loop (``scheduler``; it beats the heartbeat too), and, when
``workers.metrics_port`` is set, the Prometheus endpoint (``metrics``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from boundary_celery.shell.heartbeat import Heartbeat
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.receipt import begin_hook
from boundary_celery.shell.scheduler import SchedulerLoop
from boundary_celery.shell.transport import QoS

log = logging.getLogger("boundary_celery.scheduler")


class WorkerRuntime(bootsteps.StartStopStep):
    """Worker bootstep: begin hook, heartbeat, embedded scheduler, metrics endpoint."""

    label = "boundary runtime"
    # Start after the pool has forked its children, so no thread of ours is running
    # (and possibly holding an import or logging lock) when a child is created.
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.loop: SchedulerLoop | None = None
        self.heartbeat: Heartbeat | None = None
        self.metrics_server: Any = None

    def start(self, worker: Any) -> None:
        jobs = jobs_of(worker.app)
        hostname = worker.hostname
        QoS.begin_hook = begin_hook(jobs, hostname)  # before the consumer starts (it is last)
        self.heartbeat = heartbeat = Heartbeat(jobs, hostname)
        embedded = jobs.settings.scheduler.enabled
        interval = (jobs.settings.scheduler.interval_ms if embedded
                    else jobs.settings.workers.heartbeat_interval_s * 1000)
        self.loop = SchedulerLoop(jobs, interval_ms=interval, heartbeat=heartbeat,
                                  schedule=embedded)
        heartbeat()  # first pass in the main thread: lazy imports happen here, not
        self.loop.run_once()  # in the thread while a pool child may be forked
        self.loop.start()
        port = jobs.settings.workers.metrics_port
        if port is not None:
            # Imported only here: prometheus_client is not loaded by workers without it.
            from boundary_celery.shell.metrics import start_worker_metrics_server

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
        if self.heartbeat is not None:
            try:
                self.heartbeat.stop()
            except Exception:
                log.exception("could not remove the worker heartbeat")
