"""``python -m examples.demo`` (what ``make demo`` runs), as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boundary_celery.redis_server import find_redis_server

ROOT = Path(__file__).resolve().parents[2]
TABLE_HEADER = ("job type", "priority", "status", "attempts", "retry_count", "duration ms",
                "started")

pytestmark = pytest.mark.e2e


def run_demo(**extra: str) -> subprocess.CompletedProcess[str]:
    # A fresh shell: no REDIS_URL and none of the BOUNDARY_* settings of the test session.
    env = {k: v for k, v in os.environ.items()
           if k != "REDIS_URL" and not k.startswith("BOUNDARY_")}
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "examples.demo"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=90,
    )


def check_output(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    for column in TABLE_HEADER:
        assert column in out, f"column {column!r} missing\n{out}"
    assert "completed" in out
    assert "failed" in out
    assert "Payment gateway unavailable" in out
    assert "Dead-letter queue (1)" in out
    assert "All 9 jobs finished as expected" in out
    return out


def redis_server_available() -> bool:
    # run_demo() drops BOUNDARY_* (so BOUNDARY_DEMO_NO_REDIS): only the binary matters here.
    return find_redis_server(honor_env=False) is not None


@pytest.mark.skipif(not redis_server_available(), reason="redis-server is not installed")
def test_demo_starts_its_own_redis_and_a_real_worker() -> None:
    out = check_output(run_demo())
    assert "started a throwaway redis-server" in out
    assert "worker" in out and "ready" in out
    assert "in-memory" not in out
    # The worker and the throwaway server are gone (each is a child of the demo's process).
    port = out.split("redis://127.0.0.1:", 1)[1].split("/", 1)[0]
    probe = subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True,
                           timeout=10) if shutil.which("redis-cli") else None
    assert probe is None or probe.stdout.strip() != "PONG"


def test_demo_falls_back_to_memory_without_redis() -> None:
    out = check_output(run_demo(BOUNDARY_DEMO_NO_REDIS="1"))
    assert "in-memory adapter" in out
    assert "redis-server" not in out.split("in-memory mode", 1)[0]
