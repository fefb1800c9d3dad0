"""A worker started with workers.metrics_port serves Prometheus metrics itself."""

from __future__ import annotations

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_metrics_port(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    port = _free_port()
    worker_factory([q], env={"BOUNDARY_WORKERS__METRICS_PORT": str(port)})
    job_id = jobs.enqueue("e2e.record", {"tag": "m"}, queue=q)
    wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is JobStatus.COMPLETED,
             timeout=10)
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {(s.name, s.labels.get("queue")): s.value
               for fam in text_string_to_metric_families(body) for s in fam.samples}
    assert samples[("job_succeeded_total", None)] == 1
    assert samples[("job_queue_size", q)] == 0
