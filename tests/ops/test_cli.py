"""``celery -A app boundary ...`` run as real subprocesses against a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from boundary_celery.testing import Sandbox, wait_for
from tests.conftest import ROOT

LEVELS = ["critical", "high", "normal", "low", "bulk"]


def cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.e2e.jobs_app", "boundary", *args],
        env=sandbox.env(), cwd=ROOT, capture_output=True, text=True, timeout=25,
    )


def cli_json(sandbox: Sandbox, *args: str, code: int = 0) -> Any:
    proc = cli(sandbox, *args, "--json")
    assert proc.returncode == code, proc.stderr
    return json.loads(proc.stdout)


def test_stats_counts_waiting_jobs_per_level(sandbox: Sandbox, make_jobs: Any) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("cli")
    for i, level in enumerate(LEVELS):
        for _ in range(i + 1):
            jobs.enqueue("e2e.record", {"tag": level}, queue=q, priority=level)

    data = cli_json(sandbox, "stats")
    (row,) = [r for r in data["queues"] if r["queue_name"] == q]
    assert row["size"] == 15
    assert row["size_by_priority"] == {lv: i + 1 for i, lv in enumerate(LEVELS)}

    table = cli(sandbox, "stats")
    assert table.returncode == 0, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if q in ln)
    assert line.split("│")[2].strip() == "15"  # waiting, then one column per level
    assert [c.strip() for c in line.split("│")[3:8]] == ["1", "2", "3", "4", "5"]


def test_failed_job_retry_and_purge(sandbox: Sandbox, worker_factory: Any,
                                    make_jobs: Any) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("dlq")
    worker_factory([q])
    jid = jobs.enqueue("e2e.always_fail", {"key": "k1"}, queue=q, priority="high")
    wait_for(lambda: jobs.dlq_size() == 1, 15, message="job dead-lettered")

    dead = cli_json(sandbox, "failed")
    assert dead["dlq_size"] == 1
    assert [(j["id"], j["job_type"], j["status"]) for j in dead["jobs"]] == [
        (jid, "e2e.always_fail", "failed")]
    table = cli(sandbox, "failed")
    assert table.returncode == 0 and jid in table.stdout and "boom k1" in table.stdout

    record = cli_json(sandbox, "job", jid)
    assert record["status"] == "failed" and record["retry_count"] == 3
    assert record["error"]["type"] == "ValueError" and record["attempts"] == 3
    shown = cli(sandbox, "job", jid)
    assert shown.returncode == 0 and "e2e.always_fail" in shown.stdout

    again = cli_json(sandbox, "retry", jid)
    assert again["priority"] == "high" and again["queue"] == q
    # one more failure sends it back to the DLQ (its retries are not reset)
    wait_for(lambda: jobs.dlq_size() == 1 and jobs.find_job(jid).retry_count == 4, 15,
             message="retried job dead-lettered again")

    assert cli_json(sandbox, "purge-dlq", "--yes") == {"purged": 1, "job_id": None}
    assert cli_json(sandbox, "failed")["jobs"] == []


def test_exit_codes(sandbox: Sandbox) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    missing = cli(sandbox, "job", unknown)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert cli_json(sandbox, "job", unknown, code=1)["error"] == "not found"
    assert cli(sandbox, "retry", unknown).returncode == 1
    assert cli(sandbox, "purge-dlq", unknown).returncode == 1
    assert cli(sandbox, "failed", "--limit", "0").returncode == 2
    assert cli(sandbox, "no-such-command").returncode == 2
    aborted = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.e2e.jobs_app", "boundary", "purge-dlq"],
        env=sandbox.env(), cwd=ROOT, capture_output=True, text=True, timeout=25, input="n\n",
    )
    assert aborted.returncode == 1
    helptext = cli(sandbox, "--help")
    assert helptext.returncode == 0 and "Exit codes" in helptext.stdout


def test_scheduled_lists_delayed_jobs(sandbox: Sandbox, make_jobs: Any) -> None:
    _, jobs = make_jobs()
    q = sandbox.queue("later")
    due = datetime.now(UTC) + timedelta(hours=1)
    jid = jobs.schedule("e2e.record", {"tag": "later"}, execute_at=due, queue=q, priority="low")

    data = cli_json(sandbox, "scheduled")
    assert data["scheduled_count"] == 1
    (row,) = data["jobs"]
    assert row["id"] == jid and row["job_type"] == "e2e.record" and row["priority"] == "low"
    assert 3_500_000 < row["due_in_ms"] <= 3_600_000
    table = cli(sandbox, "scheduled")
    assert table.returncode == 0 and jid in table.stdout and "e2e.record" in table.stdout
