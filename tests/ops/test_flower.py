"""A real Flower beside a real worker: jobs under their types and ids, queue lengths per level."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boundary_celery.testing import Sandbox, wait_for
from tests.conftest import ROOT

LEVELS = ["critical", "high", "normal", "low", "bulk"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def flower(sandbox: Sandbox) -> Iterator[str]:
    """``celery -A tests.e2e.jobs_app flower`` on a free port; yields its base URL."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="boundary-flower-", suffix=".log")[1])
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.e2e.jobs_app", "flower",
             f"--port={port}", "--address=127.0.0.1"],
            env=sandbox.env(FLOWER_UNAUTHENTICATED_API="true"), cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"flower exited:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 20, 0.1, "flower up")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.unlink(missing_ok=True)


def test_flower_shows_jobs_and_counts_every_level(
    sandbox: Sandbox, make_jobs: Any, worker_factory: Any, flower: str
) -> None:
    app, jobs = make_jobs()
    run_q, wait_q = sandbox.queue("run"), sandbox.queue("wait")
    worker = worker_factory([run_q, wait_q])

    def api(path: str) -> Any:
        resp = httpx.get(f"{flower}{path}", timeout=5)
        assert resp.status_code == 200, (path, resp.status_code, resp.text)
        return resp.json()

    def knows_wait_queue() -> bool:
        info = api("/api/workers?refresh=1").get(worker.hostname, {})
        return wait_q in {q["name"] for q in info.get("active_queues", [])}

    wait_for(knows_wait_queue, 15, 0.3, "flower sees the worker's queues")

    # 1. every job shows under its job type and id, with its final state
    done = {jobs.enqueue("e2e.record", {"tag": lv}, queue=run_q, priority=lv): "SUCCESS"
            for lv in ("critical", "bulk")}
    done[jobs.enqueue("e2e.always_fail", {"key": "f"}, queue=run_q)] = "FAILURE"

    def final_states() -> dict[str, Any] | None:
        tasks = api("/api/tasks")
        seen = {jid: tasks[jid] for jid in done if jid in tasks}
        if len(seen) == len(done) and all(seen[j]["state"] == s for j, s in done.items()):
            return seen
        return None

    seen = wait_for(final_states, 20, 0.3, "jobs in flower with final states")
    assert {seen[j]["name"] for j in done} == {"e2e.record", "e2e.always_fail"}
    assert all(seen[j]["uuid"] == j for j in done)

    # 2. queue lengths count every level: stop consuming wait_q, then fill each level
    app.control.cancel_consumer(wait_q, destination=[worker.hostname], reply=True, timeout=5)
    for i, lv in enumerate(LEVELS):
        for _ in range(i + 1):
            jobs.enqueue("e2e.record", {"tag": lv}, queue=wait_q, priority=lv)
    assert jobs.queue_size(wait_q) == 15

    lengths = {q["name"]: q["messages"] for q in api("/api/queues/length")["active_queues"]}
    assert lengths[wait_q] == 15
    assert lengths[run_q] == 0
