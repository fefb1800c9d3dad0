"""``/metrics`` parses with prometheus_client's parser and equals the store's counters."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundary_celery.adapters.redis_records import to_ms
from boundary_celery.admin import create_admin_app
from boundary_celery.core.job import complete_job, start_job
from boundary_celery.core.outcome import JobResult, settle
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.stats import DURATION_BUCKETS_MS
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.metrics import start_worker_metrics_server
from boundary_celery.testing import Sandbox, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.e2e
def test_metrics_equal_the_store(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    q, idle = sandbox.queue("q"), sandbox.queue("idle")
    _, jobs = make_jobs()
    worker_factory([q])
    for i in range(4):
        jobs.enqueue("e2e.record", {"tag": f"m{i}"}, queue=q)
    jobs.enqueue("e2e.flaky", {"key": "once", "failures": 1}, queue=q)  # one retry, then ok
    jobs.enqueue("e2e.flaky", {"key": "dead", "failures": 9}, queue=q, max_retries=0)
    wait_for(lambda: jobs.queue_stats(q).processed_total == 6, 15, message="6 outcomes")
    for level in ("critical", "low", "low"):
        jobs.enqueue("e2e.record", {"tag": level}, queue=idle, priority=level)
    # A scheduled job 5 s overdue (as if the scheduler had stalled) shows as lag.
    sandbox.redis.zadd(jobs.store.keys.scheduled, {"overdue-job": to_ms(utcnow()) - 5000})

    text = TestClient(create_admin_app(jobs), base_url="http://127.0.0.1").get("/metrics").text
    samples = scrape(text)
    counters = {name: {k: float(v) for k, v in
                       sandbox.redis.hgetall(jobs.store.keys.queue_stats(name)).items()}
                for name in (q, idle)}  # the raw durable counters
    stats = jobs.job_stats()

    succeeded = sum(c.get("succeeded", 0) for c in counters.values())
    failed = sum(c.get("failed", 0) for c in counters.values())
    assert value(samples, "job_succeeded_total") == succeeded == 5
    assert value(samples, "job_failed_total") == failed == 1
    assert value(samples, "job_processed_total") == succeeded + failed
    assert value(samples, "job_retried_total") == sum(
        c.get("retried", 0) for c in counters.values())
    assert value(samples, "job_workers_active") == stats.active_workers >= 1
    assert value(samples, "job_dlq_size") == jobs.dlq_size() == 1
    assert value(samples, "job_scheduled_jobs") == jobs.scheduled_count() == 1
    assert value(samples, "job_scheduler_lag_ms") == pytest.approx(5000, abs=1000)
    for name in (q, idle):
        assert value(samples, "job_queue_size", queue=name) == jobs.queue_size(name)
        for level, n in jobs.queue_sizes_by_priority(name).items():
            assert value(samples, "job_queue_depth", queue=name, priority=level) == n
        qs = jobs.queue_stats(name)
        assert value(samples, "job_queue_avg_duration_ms", queue=name) == qs.avg_duration_ms
        assert value(samples, "job_queue_processed_total", queue=name) == qs.processed_total
        assert value(samples, "job_queue_failed_total", queue=name) == qs.failed_total
    assert value(samples, "job_queue_size", queue=idle) == 3
    assert value(samples, "job_queue_depth", queue=idle, priority="low") == 2
    assert value(samples, "job_queue_avg_duration_ms", queue=q) > 0


def test_duration_histogram_by_job_type_and_queue(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("q")

    def finish(job_type: str, ms: int, ok: bool) -> None:
        """Write one outcome the way a worker does: complete, or dead-letter with count."""
        start = utcnow()
        end = start + timedelta(milliseconds=ms)
        job = start_job(jobs.build_job(job_type, {}, queue=q, max_retries=0), start)
        if ok:
            jobs.store.complete(complete_job(job, None, end), end)
            return
        done = settle(job, JobResult.failure("boom"), end, RetryPolicy()).job
        jobs.store.dead_letter(done, count=True)

    for ms in (3, 40, 40, 700, 10**6):
        finish("emails.send", ms, ok=ms != 40)  # both write paths observe durations
    finish("reports.build", 120, ok=False)

    samples = scrape(TestClient(create_admin_app(jobs), base_url="http://127.0.0.1").get("/metrics").text)

    def bucket(job_type: str, le: str) -> float:
        return value(samples, "job_duration_ms_bucket", job_type=job_type, queue=q, le=le)

    assert bucket("emails.send", "5.0") == 1
    assert bucket("emails.send", "50.0") == 3
    assert bucket("emails.send", "1000.0") == 4
    assert bucket("emails.send", str(float(DURATION_BUCKETS_MS[-1]))) == 4
    assert bucket("emails.send", "+Inf") == 5
    assert value(samples, "job_duration_ms_count", job_type="emails.send", queue=q) == 5
    assert value(samples, "job_duration_ms_sum", job_type="emails.send", queue=q) == (
        3 + 40 + 40 + 700 + 10**6)
    assert bucket("reports.build", "100.0") == 0 and bucket("reports.build", "250.0") == 1


def test_worker_metrics_server(make_jobs: Callable[..., Any], sandbox: Sandbox) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("q")
    jobs.enqueue("e2e.record", {"tag": "w"}, queue=q)
    server, thread = start_worker_metrics_server(jobs, 0, addr="127.0.0.1")
    try:
        res = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5)
        assert res.status_code == 200
        samples = scrape(res.text)
        assert value(samples, "job_queue_size", queue=q) == 1
        assert ("job_processed_total", ()) in samples
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
