"""``celery -A app boundary health`` against a real worker subprocess and a real Redis.

The container probes in docker-compose.yml and deploy/k8s/ rely on its exit codes:
0 healthy, 1 a worker's heartbeat stale or missing, 3 Redis unavailable.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from boundary_celery.redis_server import free_port
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

APP = "tests.e2e.jobs_app"


def health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", APP, "boundary", "health", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=25,
    )


def test_health_follows_a_real_workers_heartbeat(sandbox: Sandbox,
                                                 worker_factory: Any) -> None:
    env = sandbox.env()  # the shipped heartbeat (5 s): a worker beats when it starts
    worker: WorkerProcess = worker_factory([sandbox.queue("health")], APP)
    name = worker.hostname

    # the worker beats within an interval of being ready
    ok = wait_for(lambda: (p := health(env, "--worker", name)).returncode == 0 and p,
                  10, 0.2, f"health of {name} exits 0")
    assert ok.stdout.strip().endswith("healthy"), ok.stdout
    assert f"worker {name}: heartbeat" in ok.stdout
    report = json.loads(health(env, "--worker", name, "--json").stdout)
    assert report["ok"] is True and report["workers"][name]["ok"] is True

    # a name that never beat
    never = health(env, "--worker", "nobody@nowhere")
    assert never.returncode == 1, never.stdout + never.stderr
    assert "worker nobody@nowhere: no heartbeat in the store" in never.stderr
    both = health(env, "--worker", name, "--worker", "nobody@nowhere")
    assert both.returncode == 1  # one missing worker is enough

    # stopped (SIGTERM: Celery's warm shutdown), then older than --max-age-s
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0, worker.log_text()[-2000:]
    stale = wait_for(
        lambda: (p := health(env, "--worker", name, "--max-age-s", "0.5")).returncode == 1
        and p, 10, 0.2, f"health of the stopped {name} exits 1")
    assert "unhealthy: worker " + name in stale.stderr
    assert "healthy" not in stale.stdout


def test_health_reports_a_stale_heartbeat_of_a_killed_worker(sandbox: Sandbox,
                                                             worker_factory: Any) -> None:
    """SIGKILL leaves the last heartbeat in the store (no clean stop): past --max-age-s
    the probe says how old it is and exits 1."""
    env = sandbox.env()
    worker: WorkerProcess = worker_factory([sandbox.queue("killed")], APP)
    name = worker.hostname
    wait_for(lambda: health(env, "--worker", name).returncode == 0, 10, 0.2,
             f"health of {name} exits 0")
    worker.kill()
    stale = wait_for(
        lambda: (p := health(env, "--worker", name, "--max-age-s", "1")).returncode == 1
        and p, 10, 0.2, f"health of the killed {name} exits 1")
    assert f"worker {name}: last heartbeat" in stale.stderr and "(> 1 s)" in stale.stderr


def test_health_exits_3_when_redis_is_unavailable(sandbox: Sandbox) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = sandbox.env(REDIS_URL=url, BOUNDARY_TEST_REDIS_URL=url)
    down = health(env, "--worker", "worker@%h")
    assert down.returncode == 3, down.stdout + down.stderr
    assert "Redis is unavailable" in down.stderr
    assert "healthy" not in down.stdout
