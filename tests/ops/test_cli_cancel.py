"""``celery -A app boundary cancel`` run as a real subprocess against a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boundary_celery.testing import Sandbox, wait_for
from tests.conftest import ROOT

APP = "tests.e2e.cancel_app"


def cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", APP, "boundary", *args],
        env=sandbox.env(), cwd=ROOT, capture_output=True, text=True, timeout=25,
    )


def cli_json(sandbox: Sandbox, *args: str, code: int = 0) -> Any:
    proc = cli(sandbox, *args, "--json")
    assert proc.returncode == code, proc.stderr
    return json.loads(proc.stdout)


def test_cancel_waiting_and_scheduled_jobs_and_unknown_ids(
    sandbox: Sandbox, make_jobs: Any
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("cli")
    later = jobs.schedule("cancel.record", {"tag": "later"}, queue=q,
                          execute_at=datetime.now(UTC) + timedelta(hours=1))
    waiting = jobs.enqueue("cancel.record", {"tag": "now"}, queue=q, priority="low")

    data = cli_json(sandbox, "cancel", later)
    assert data["id"] == later and data["status"] == "cancelled" and data["action"] == "cancel"
    assert jobs.scheduled_count() == 0
    shown = cli(sandbox, "cancel", waiting)
    assert shown.returncode == 0, shown.stderr
    assert waiting in shown.stdout and "cancel.record" in shown.stdout
    assert shown.stdout.strip().endswith(": cancelled")
    assert jobs.find_job(waiting).status.value == "cancelled"
    again = cli(sandbox, "cancel", waiting)
    assert again.returncode == 0 and "already cancelled: unchanged" in again.stdout
    assert cli_json(sandbox, "cancel", waiting)["action"] == "none"

    unknown = "00000000-0000-0000-0000-000000000000"
    missing = cli(sandbox, "cancel", unknown)
    assert missing.returncode == 1 and f"job {unknown} not found" in missing.stderr
    assert cli_json(sandbox, "cancel", unknown, code=1) == {"error": "not found",
                                                           "job_id": unknown}
    assert cli(sandbox, "cancel", "not-a-uuid").returncode == 1
    assert cli(sandbox, "cancel").returncode == 2  # JOB_ID is required
    helptext = cli(sandbox, "cancel", "--help")
    assert helptext.returncode == 0 and "--terminate" in helptext.stdout


@pytest.mark.e2e
def test_cancel_terminate_of_a_running_job(
    sandbox: Sandbox, make_jobs: Any, worker_factory: Any
) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("cli")
    worker_factory([q], APP)
    jid = jobs.enqueue("cancel.sleep", {"key": "cli", "seconds": 30}, queue=q)
    wait_for(lambda: sandbox.redis.llen(f"{sandbox.prefix}:started:cli") == 1, 15,
             message="job started")

    data = cli_json(sandbox, "cancel", jid, "--terminate")
    assert data["status"] == "running" and data["action"] == "request"
    wait_for(lambda: jobs.find_job(jid).status.value == "cancelled", 15,
             message="the worker killed it and recorded it cancelled")
    record = cli_json(sandbox, "job", jid)
    assert record["status"] == "cancelled" and record["completed_at"]
    assert sandbox.redis.llen(f"{sandbox.prefix}:done:cli") == 0
