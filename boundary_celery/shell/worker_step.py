"""The worker bootstep that starts boundary-celery's runtime pieces in a worker.

In order: the consumer's ``begin`` hook (``receipt``), the heartbeat thread (it also
renews the leases of every delivery the worker holds), the embedded scheduler loop
(``scheduler``), and, when ``workers.metrics_port`` is set, the Prometheus endpoint
(``metrics``); a warm shutdown is bounded by ``shutdown_timeout_ms`` (``shutdown``).
When the event loop starts, the pool's time-limit timers are wrapped (``pool_limits``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps, signals

from boundary_celery.shell.heartbeat import Heartbeat
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.pool_limits import arm_hard_first
from boundary_celery.shell.receipt import begin_hook
from boundary_celery.shell.scheduler import SchedulerLoop
from boundary_celery.shell.shutdown import arm as arm_shutdown_timeout
from boundary_celery.shell.transport import HELD, QoS

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
        self.heartbeat = heartbeat = Heartbeat(jobs, hostname, leases=HELD.tags)
        heartbeat()  # first beat in the main thread: lazy imports happen here, not
        heartbeat.start()  # in a thread while a pool child may be forked
        worker.boundary_heartbeat = heartbeat  # stopped at worker_shutdown (see below)
        arm_shutdown_timeout(jobs.settings.workers.shutdown_timeout_ms)
        embedded = jobs.settings.scheduler.enabled
        interval = jobs.settings.scheduler.interval_ms
        if embedded:
            self.loop = SchedulerLoop(jobs, interval_ms=interval)
            self.loop.run_once()
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

    def register_with_event_loop(self, worker: Any, hub: Any) -> None:
        # A hard time limit that comes before the soft one is armed alone.
        arm_hard_first(worker.pool)

    def stop(self, worker: Any) -> None:
        # The heartbeat keeps renewing the leases of the jobs the pool still runs during a
        # warm shutdown (this step stops before the pool): it stops at worker_shutdown.
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self.loop is not None:
            self.loop.stop()


@signals.worker_shutdown.connect(weak=False)
def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    """After the pool finished: stop beating and leave the worker set."""
    heartbeat = getattr(sender, "boundary_heartbeat", None)
    if heartbeat is None:
        return
    try:
        heartbeat.stop()
    except Exception as exc:
        log.warning(event("Could not remove the worker heartbeat", error=repr(exc)))
