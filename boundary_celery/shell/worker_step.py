"""The worker bootstep that starts boundary-celery's runtime pieces in a worker.

In order: the consumer's ``begin`` hook (``receipt``), the heartbeat thread (it also
renews the leases of every delivery the worker holds), the embedded scheduler loop
(``scheduler``), and, when ``workers.metrics_port`` is set, the Prometheus endpoint
(``metrics``); a warm shutdown is bounded by ``shutdown_timeout_ms`` (``shutdown``).
When the event loop starts, the pool's time-limit timers are wrapped (``pool_limits``).

A worker started before Redis is usable (nothing listening, ``LOADING`` its dataset, the
password not set yet) waits for it in :meth:`WorkerRuntime.start`, as Celery's consumer
waits for its broker: with Celery's ``broker_connection_retry_on_startup`` (unset: its
``broker_connection_retry``) and ``broker_connection_max_retries``, one warning line per
attempt, then the worker starts normally (see :func:`until_redis_usable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from celery import bootsteps, signals
from celery.worker.state import maybe_shutdown
from kombu.utils.functional import retry_over_time

from boundary_celery.adapters.deliveries import HOLDINGS_ATTR, Holdings
from boundary_celery.shell.heartbeat import Heartbeat
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.pool_limits import arm_hard_first
from boundary_celery.shell.receipt import begin_hook
from boundary_celery.shell.scheduler import SchedulerLoop
from boundary_celery.shell.shutdown import arm as arm_shutdown_timeout

log = logging.getLogger("boundary_celery.scheduler")

#: What "Redis not usable yet" raises: refused or timed out, and redis-py's
#: ConnectionError subclasses BusyLoadingError (LOADING) and AuthenticationError (NOAUTH,
#: WRONGPASS, AUTH without a password configured). The broker transport's
#: ``connection_errors`` (kombu.transport.redis.get_redis_error_classes) retry the same.
REDIS_UNUSABLE: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, OSError,
)
#: Seconds between attempts: 0.5, 1, 1.5, ... at most 5 (Celery's consumer: 2, 4, ... 30).
RETRY_START_S, RETRY_STEP_S, RETRY_MAX_S = 0.5, 0.5, 5.0


def retry_on_startup(conf: Any) -> bool:
    """Celery's rule (``Consumer.ensure_connected``, first connection):
    ``broker_connection_retry_on_startup``, or ``broker_connection_retry`` when unset."""
    on_startup = conf.broker_connection_retry_on_startup
    return bool(conf.broker_connection_retry if on_startup is None else on_startup)


def until_redis_usable(fn: Callable[[], None], conf: Any, worker: str) -> None:
    """Call ``fn`` until it gets through to Redis, as Celery's consumer connects.

    Without retry on startup (:func:`retry_on_startup`) one call: its error ends the
    worker. Else an error in :data:`REDIS_UNUSABLE` is logged as one warning line and
    ``fn`` is called again after a growing pause, at most ``broker_connection_max_retries``
    times (None: forever), then the last error is raised; kombu's ``retry_over_time`` (what
    ``Connection.ensure_connection`` runs) with Celery's ``maybe_shutdown`` callback, so a
    SIGTERM or SIGINT stops the wait.
    """
    if not retry_on_startup(conf):
        fn()
        return
    max_retries = conf.broker_connection_max_retries

    def warn(exc: BaseException, intervals: Iterator[float], retries: int) -> float:
        wait = next(intervals)
        log.warning(event("Redis not usable at worker start; retrying", worker=worker,
                          error=repr(exc), attempt=retries + 1, max_retries=max_retries,
                          retry_in_s=wait))
        return wait

    # kombu's stub types errback as (exc, interval); retry_over_time calls it with
    # (exc, intervals, retries) and sleeps what it returns.
    retry_over_time(fn, REDIS_UNUSABLE, errback=warn,  # type: ignore[arg-type]
                    max_retries=max_retries,
                    interval_start=RETRY_START_S, interval_step=RETRY_STEP_S,
                    interval_max=RETRY_MAX_S, callback=maybe_shutdown)


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
        # Before the consumer starts (it is last): its connections carry these.
        holdings = Holdings(begin_hook(jobs, hostname))
        setattr(worker, HOLDINGS_ATTR, holdings)
        self.heartbeat = heartbeat = Heartbeat(jobs, hostname, leases=holdings.held.tags)
        embedded = jobs.settings.scheduler.enabled
        interval = jobs.settings.scheduler.interval_ms
        loop = self.loop = SchedulerLoop(jobs, interval_ms=interval) if embedded else None

        def first_pass() -> None:
            # In the main thread: lazy imports happen here, not in a thread while a pool
            # child may be forked. A beat that got through is not repeated on a retry.
            heartbeat()
            if loop is not None:
                loop.run_once()

        until_redis_usable(first_pass, worker.app.conf, hostname)
        heartbeat.start()
        worker.boundary_heartbeat = heartbeat  # stopped at worker_shutdown (see below)
        arm_shutdown_timeout(jobs.settings.workers.shutdown_timeout_ms)
        if loop is not None:
            loop.start()
            worker.boundary_scheduler = loop  # joined at worker_shutdown (see below)
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
        # The scheduler is only asked to stop here; its thread ends while the pool stops
        # (billiard's close and join take over a second) and is joined at worker_shutdown.
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self.loop is not None:
            self.loop.request_stop()


@signals.worker_shutdown.connect(weak=False)
def _stop_threads(sender: Any = None, **_: Any) -> None:
    """After the pool finished: wait for the scheduler's thread, stop beating and leave
    the worker set."""
    loop = getattr(sender, "boundary_scheduler", None)
    if loop is not None:
        loop.stop()
    heartbeat = getattr(sender, "boundary_heartbeat", None)
    if heartbeat is None:
        return
    try:
        heartbeat.stop()
    except Exception as exc:
        log.warning(event("Could not remove the worker heartbeat", error=repr(exc)))
