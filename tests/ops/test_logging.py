"""Structured worker logs: kv or JSON (settings.logging.format), with the guide's messages."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from boundary_celery.shell import logfmt
from boundary_celery.testing import Sandbox, wait_for


def run_jobs(sandbox: Sandbox, make_jobs: Any, worker_factory: Any, fmt: str) -> str:
    """A worker in ``fmt`` runs 1 good and 1 always-failing job (3 attempts); its log."""
    _, jobs = make_jobs()
    q = sandbox.queue("log")
    worker = worker_factory([q], env={"BOUNDARY_LOGGING__FORMAT": fmt})
    jobs.enqueue("e2e.record", {"tag": "ok"}, queue=q)
    jobs.enqueue("e2e.always_fail", {"key": "x"}, queue=q)
    wait_for(lambda: jobs.dlq_size() == 1 and jobs.job_stats().total_succeeded == 1, 15,
             message="both jobs finished")
    worker.stop()
    return worker.log_text()


def test_json_format_one_object_per_line(sandbox: Sandbox, make_jobs: Any,
                                         worker_factory: Any) -> None:
    text = run_jobs(sandbox, make_jobs, worker_factory, "json")
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    # no logging record is rendered the plain Celery way
    assert not [ln for ln in text.splitlines() if re.match(r"\[\d{4}-\d\d-\d\d ", ln)]
    assert all({"ts", "level", "logger"} <= r.keys() for r in records)
    events = [r for r in records if "event" in r]
    names = [r["event"] for r in events]
    for expected in ("Started worker", "Processing job", "Job completed successfully",
                     "Job failed", "Worker stopped"):
        assert expected in names, expected
    assert any(r.get("message", "").startswith("Connected to redis://") for r in records)
    started = next(r for r in events if r["event"] == "Started worker")
    assert started["queues"] == [sandbox.queue("log")]
    stopped = next(r for r in events if r["event"] == "Worker stopped")
    assert (stopped["processed"], stopped["succeeded"], stopped["failed"],
            stopped["retried"]) == (4, 1, 1, 2)
    processing = next(r for r in events if r["event"] == "Processing job")
    assert processing["task_id"] == processing["job_id"]


def test_kv_format(sandbox: Sandbox, make_jobs: Any, worker_factory: Any) -> None:
    text = run_jobs(sandbox, make_jobs, worker_factory, "kv")
    assert "Connected to redis://" in text
    assert re.search(r"Started worker worker_id=\S+ queues=", text)
    assert re.search(r"Processing job job_id=\S+ job_type=e2e.record ", text)
    assert re.search(r"Worker stopped worker_id=\S+ processed=4 succeeded=1 failed=1 "
                     r"retried=2", text)


def test_json_formatter_merges_events() -> None:
    fmt = logfmt.JsonFormatter()
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, '{"event": "E", "a": 1}', None, None)
    assert json.loads(fmt.format(rec))["a"] == 1
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    out = json.loads(fmt.format(plain))
    assert out["message"] == "hello you" and out["level"] == "WARNING"
    with pytest.raises(ValueError):
        logfmt.set_format("xml")
