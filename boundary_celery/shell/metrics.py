"""Prometheus metrics read from the job store on every scrape.

:class:`StoreCollector` is a ``prometheus_client`` collector: each scrape reads the durable
Redis counters (``Jobs.job_stats()``), so the values equal the store's and survive restarts
of the admin process and of the workers. The job duration histogram is kept in Redis too:
the worker adds each observation (``complete.lua``, ``dead_letter.lua``) and
the collector turns the stored bucket counts into a histogram.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from boundary_celery.core.priority import Priority
from boundary_celery.core.stats import DURATION_BUCKETS_MS

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

__all__ = [
    "StoreCollector",
    "make_registry",
    "render_metrics",
    "start_worker_metrics_server",
]

log = logging.getLogger("boundary_celery.metrics")

class StoreCollector(Collector):
    """Reads the job store on every scrape (no in-process state)."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def describe(self) -> list[Metric]:
        return []  # metrics are only known at collect time; skip registration-time collect

    def collect(self) -> Iterator[Metric]:
        stats = self.jobs.job_stats()
        yield CounterMetricFamily(
            "job_processed", "Jobs that reached a terminal outcome (succeeded + failed).",
            value=stats.total_processed)
        yield CounterMetricFamily(
            "job_succeeded", "Jobs that completed successfully.", value=stats.total_succeeded)
        yield CounterMetricFamily(
            "job_failed", "Jobs that failed for good (dead-lettered).", value=stats.total_failed)
        yield CounterMetricFamily(
            "job_retried", "Retries scheduled after a failed attempt.", value=stats.total_retried)
        yield GaugeMetricFamily(
            "job_workers_active", "Workers with a recent heartbeat.", value=stats.active_workers)
        yield GaugeMetricFamily(
            "job_dlq_size", "Jobs in the dead letter queue.", value=stats.dlq_size)
        yield GaugeMetricFamily(
            "job_scheduled_jobs", "Jobs waiting in the scheduled set (delayed and retries).",
            value=stats.scheduled_count)
        yield GaugeMetricFamily(
            "job_scheduler_lag_ms", "How overdue the oldest due scheduled job is, in ms.",
            value=stats.scheduler_lag_ms)

        size = GaugeMetricFamily("job_queue_size", "Jobs waiting in a queue (all levels).",
                                 labels=["queue"])
        depth = GaugeMetricFamily("job_queue_depth", "Jobs waiting in a queue per priority level.",
                                  labels=["queue", "priority"])
        avg = GaugeMetricFamily("job_queue_avg_duration_ms",
                                "Mean duration of a queue's processed jobs, in ms.",
                                labels=["queue"])
        q_processed = CounterMetricFamily("job_queue_processed", "Processed jobs per queue.",
                                          labels=["queue"])
        q_succeeded = CounterMetricFamily("job_queue_succeeded", "Succeeded jobs per queue.",
                                          labels=["queue"])
        q_failed = CounterMetricFamily("job_queue_failed", "Failed (dead-lettered) jobs per queue.",
                                       labels=["queue"])
        q_retried = CounterMetricFamily("job_queue_retried", "Retries scheduled per queue.",
                                        labels=["queue"])
        for q in stats.queues:
            size.add_metric([q.queue_name], q.size)
            avg.add_metric([q.queue_name], q.avg_duration_ms)
            q_processed.add_metric([q.queue_name], q.processed_total)
            q_succeeded.add_metric([q.queue_name], q.succeeded_total)
            q_failed.add_metric([q.queue_name], q.failed_total)
            q_retried.add_metric([q.queue_name], q.retried_total)
            for level in Priority.ordered():
                n = q.size_by_priority.get(level.value, 0)
                depth.add_metric([q.queue_name, level.value], n)
        yield from (size, depth, avg, q_processed, q_succeeded, q_failed, q_retried)

        hist = HistogramMetricFamily(
            "job_duration_ms", "Job run time in ms by job type and queue.",
            labels=["job_type", "queue"])
        for queue, job_type, buckets, count, sum_ms in self.jobs.duration_histograms():
            hist.add_metric([job_type, queue], _cumulative(buckets, count), sum_value=sum_ms)
        yield hist


def _cumulative(buckets: Sequence[int], count: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(DURATION_BUCKETS_MS, buckets, strict=False):
        running += n
        out.append((_fmt_bound(bound), float(running)))
    out.append(("+Inf", float(max(count, running + buckets[-1]))))
    return out


def _fmt_bound(bound: float) -> str:
    return str(float(bound))


def make_registry(jobs: Jobs) -> CollectorRegistry:
    """A registry holding only the store collector (no process/platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(jobs))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``."""
    return generate_latest(registry)


def start_worker_metrics_server(
    jobs: Jobs, port: int, addr: str = "0.0.0.0"
) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` for ``jobs`` on ``addr:port`` in a daemon thread.

    Call it once per worker (in the main process, e.g. from a worker bootstep). Returns
    ``(server, thread)``; ``server.shutdown()`` stops it. Port 0 picks a free port
    (``server.server_port``).
    """
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=addr, registry=make_registry(jobs))
    return server, thread
