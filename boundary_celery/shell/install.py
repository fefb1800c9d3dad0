"""``install(app)``: configure a Celery app for Boundary jobs and return its ``Jobs``."""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from celery import signals
from kombu import Exchange, Queue

from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.settings import BoundarySettings, load_settings
from boundary_celery.shell.context import TenantHook
from boundary_celery.shell.flower import transport_for
from boundary_celery.shell.installed import attach
from boundary_celery.shell.jobs import Jobs
from boundary_celery.shell.logfmt import event, set_format, tally
from boundary_celery.shell.worker_step import WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("boundary_celery.worker")

REDIS_SCHEMES = ("redis", "rediss", "unix")


def install(
    app: Celery,
    settings: BoundarySettings | None = None,
    *,
    tenant_hook: TenantHook | None = None,
) -> Jobs:
    """Configure ``app`` (broker, serializers, acks, priorities, hooks) and return its Jobs.

    The broker is the app's ``broker_url`` when set, else the settings' Redis URL; the
    job store lives in the same Redis database (its scripts touch both at once).
    """
    settings = settings or load_settings()
    set_format(settings.logging.format)
    url = app.conf.broker_url or settings.redis.effective_url()
    scheme = urlparse(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ValueError(f"invalid broker_url: {url!r} (boundary-celery needs a Redis broker)")
    store = RedisJobStore(
        url,
        prefix=settings.store.key_prefix,
        completed_ttl_s=settings.store.completed_ttl_s,
        dlq_max_size=settings.store.dlq_max_size,
        dlq_max_age_days=settings.store.dlq_max_age_days,
        max_connections=settings.redis.max_total,
        socket_timeout_s=max(settings.redis.timeout_ms / 1000, 1.0),
        worker_window_ms=settings.workers.heartbeat_interval_s * 3 * 1000,
    )
    transport_options = {
        **(app.conf.broker_transport_options or {}),
        **store.broker_options(),
        "visibility_timeout": settings.workers.visibility_timeout_s,
        # kombu sweeps unacked messages every interval x throttle seconds (default
        # 10 x 10): tie the sweep to the visibility timeout so a crashed worker's job
        # comes back soon after it becomes visible again.
        "unacked_restore_interval": max(1, min(10, settings.workers.visibility_timeout_s // 2)),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        broker_url=url,
        broker_transport=transport_for(url),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=settings.redis.max_total,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_acks_on_failure_or_timeout=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=settings.workers.prefetch_multiplier,
        worker_send_task_events=settings.workers.task_events,
        task_send_sent_event=settings.workers.task_events,
        task_default_queue="default",
        worker_consumer="boundary_celery.shell.consumer:BoundaryConsumer",
    )
    if not app.conf.task_queues:  # `celery worker` without -Q consumes [workers] queues
        app.conf.task_queues = [Queue(q, Exchange(q), routing_key=q)
                                for q in settings.workers.queues]
    if app.conf.worker_concurrency is None:
        app.conf.worker_concurrency = settings.workers.count
    if scheme == "rediss" and not app.conf.broker_use_ssl:
        # kombu enables TLS by itself only for a transport literally named "rediss".
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if WorkerRuntime not in app.steps["worker"]:
        app.steps["worker"].add(WorkerRuntime)
    jobs = Jobs(app, settings, store, tenant_hook=tenant_hook)
    attach(app, jobs)
    return jobs


@signals.worker_ready.connect(weak=False)
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "boundary", None) is not None:
        log.info(event("Started worker", worker_id=sender.hostname,
                       queues=sorted(q.name for q in app.amqp.queues.consume_from.values())))


@signals.worker_shutdown.connect(weak=False)
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "boundary", None) is not None:
        log.info(event("Worker stopped", worker_id=getattr(sender, "hostname", None),
                       **tally()))
