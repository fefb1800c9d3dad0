"""The admin app's refusals: a non-loopback bind without a token (a real `celery` process),
a wrong or missing token, a foreign Origin, a tokenless server reached by another name."""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boundary_celery.admin import create_admin_app
from boundary_celery.testing import Sandbox

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
JOB = f"/api/admin/jobs/{uuid.uuid4()}"


def client(jobs: Any, base_url: str = "http://127.0.0.1", **admin: Any) -> TestClient:
    settings = jobs.settings.admin.model_copy(update=admin)
    return TestClient(create_admin_app(jobs, settings), base_url=base_url)


def test_non_loopback_bind_without_token_is_refused(sandbox: Sandbox) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.e2e.jobs_app", "boundary", "admin",
         "--host", "0.0.0.0", "--port", "1"],
        env=sandbox.env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "without a token" in proc.stderr and "--insecure" in proc.stderr


def test_wrong_or_missing_token_is_401(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs()
    http = client(jobs, token="s3cret")
    assert http.get("/api/admin/jobs/stats",
                    headers={"Authorization": "Bearer nope"}).status_code == 401
    # A state-changing request without the header is refused before it touches anything.
    answer = http.post(f"{JOB}/retry")
    assert answer.status_code == 401
    assert "bearer token" in answer.json()["error"]
    ok = http.get("/api/admin/jobs/stats", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_foreign_origin_cannot_post(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs()
    http = client(jobs, token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    foreign = http.post(f"{JOB}/cancel", headers={**auth, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "cross-origin" in foreign.json()["error"]
    own = http.post(f"{JOB}/cancel", headers={**auth, "Origin": "http://127.0.0.1"})
    assert own.status_code == 404  # served: the job is unknown


def test_tokenless_server_answers_loopback_names_only(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs()
    assert client(jobs).get("/api/admin/jobs/stats").status_code == 200
    rebound = client(jobs, base_url="http://attacker.example")
    assert rebound.get("/api/admin/jobs/stats").status_code == 403
    sent = client(jobs).get("/api/admin/jobs/stats", headers={"Authorization": "Bearer x"})
    assert sent.status_code == 401
    insecure = client(jobs, base_url="http://jobs.internal", insecure=True)
    assert insecure.get("/api/admin/jobs/stats").status_code == 200
