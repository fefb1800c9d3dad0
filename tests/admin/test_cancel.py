"""``POST /api/admin/jobs/{id}/cancel`` over a real Redis, with real workers."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boundary_celery.admin import create_admin_app
from boundary_celery.testing import Sandbox, wait_for
from tests.admin.test_api import API, client_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: 'use httpx2'
    from starlette.testclient import TestClient

APP = "tests.e2e.cancel_app"


def status(jobs: Any, job_id: str) -> str | None:
    job = jobs.find_job(job_id)
    return job.status.value if job is not None else None


def started(sandbox: Sandbox, key: str) -> bool:
    return bool(sandbox.redis.llen(f"{sandbox.prefix}:started:{key}"))


@pytest.mark.e2e
def test_cancel_over_http_for_each_kind_of_job(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    q, idle = sandbox.queue("q"), sandbox.queue("idle")
    _, jobs = make_jobs()
    c = client_for(jobs)
    scheduled = jobs.schedule("cancel.record", {"tag": "s"}, queue=idle,
                              execute_at=datetime.now(UTC) + timedelta(hours=1))
    waiting = jobs.enqueue("cancel.record", {"tag": "w"}, queue=idle)

    res = c.post(f"{API}/{scheduled}/cancel")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["message"] == "Job cancelled"
    assert body["job"]["id"] == scheduled and body["job"]["status"] == "cancelled"
    assert body["job"]["completed_at"] is not None
    assert c.get(f"{API}/scheduled").json()["scheduled_count"] == 0
    assert c.post(f"{API}/{waiting}/cancel").json()["job"]["status"] == "cancelled"
    assert c.get(f"{API}/{waiting}").json()["job"]["status"] == "cancelled"
    again = c.post(f"{API}/{waiting}/cancel").json()  # unchanged, said so
    assert again["message"] == "Job already cancelled" and again["job"]["status"] == "cancelled"

    worker_factory([q], APP)
    # Running: only requested (the handler may stop); terminate in the JSON body kills it.
    polite = jobs.enqueue("cancel.sleep", {"key": "p", "seconds": 1.5}, queue=q)
    wait_for(lambda: started(sandbox, "p"), 15, message="job p started")
    res = c.post(f"{API}/{polite}/cancel")
    assert res.json()["message"] == "Cancellation requested"
    assert res.json()["job"]["status"] == "running"
    wait_for(lambda: status(jobs, polite) == "completed", 10, message="p finished anyway")
    done = c.post(f"{API}/{polite}/cancel").json()
    assert done["message"] == "Job already completed" and done["job"]["status"] == "completed"

    killed = jobs.enqueue("cancel.sleep", {"key": "k", "seconds": 30}, queue=q)
    wait_for(lambda: started(sandbox, "k"), 15, message="job k started")
    res = c.post(f"{API}/{killed}/cancel", json={"terminate": True})
    assert res.status_code == 200 and res.json()["job"]["status"] == "running"
    wait_for(lambda: status(jobs, killed) == "cancelled", 15, message="k killed, recorded")
    assert not sandbox.redis.llen(f"{sandbox.prefix}:done:k")


def test_cancel_bad_input_is_a_clear_4xx(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    _, jobs = make_jobs()
    pending = jobs.enqueue("cancel.record", {"tag": "x"}, queue=sandbox.queue("q"))
    c = client_for(jobs)
    unknown = str(uuid.uuid4())
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (f"{API}/{unknown}/cancel", {}, 404, "not found"),
        (f"{API}/123/cancel", {}, 400, "must be a UUID"),
        (f"{API}/{pending}/cancel?terminate=maybe", {}, 400, "true or false"),
        (f"{API}/{pending}/cancel", {"content": b"not json"}, 400, "JSON object"),
        (f"{API}/{pending}/cancel", {"json": [1]}, 400, "JSON object"),
        (f"{API}/{pending}/cancel", {"json": {"terminate": "yes"}}, 400, "true or false"),
    ]
    for path, kwargs, code, words in cases:
        res = c.post(path, **kwargs)
        assert res.status_code == code, (path, kwargs, res.text)
        body = res.json()
        assert body["status"] == code and words in body["error"], (path, body)
    assert status(jobs, pending) == "pending"  # no bad request touched it
    assert c.get(f"{API}/{pending}/cancel").status_code == 405
    ok = c.post(f"{API}/{pending}/cancel?terminate=false", json={"terminate": False})
    assert ok.status_code == 200 and ok.json()["job"]["status"] == "cancelled"


def test_cancel_takes_the_admin_token_only(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    _, jobs = make_jobs(admin={"token": "s3cret", "metrics_token": "scrape"})
    jid = jobs.enqueue("cancel.record", {"tag": "x"}, queue=sandbox.queue("q"))
    c = TestClient(create_admin_app(jobs))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                    {"Authorization": "Bearer scrape"}):
        res = c.post(f"{API}/{jid}/cancel", headers=headers)
        assert res.status_code == 401, headers
        assert res.headers["www-authenticate"].startswith("Bearer")
        assert status(jobs, jid) == "pending"
    res = c.post(f"{API}/{jid}/cancel", headers={"Authorization": "Bearer s3cret"})
    assert res.status_code == 200 and res.json()["job"]["status"] == "cancelled"


def test_cancel_is_in_the_openapi_document(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs()
    doc = client_for(jobs).get("/openapi.json").json()
    op = doc["paths"][f"{API}/{{id}}/cancel"]["post"]
    assert {p["name"] for p in op["parameters"]} == {"id", "terminate"}
    assert {"200", "400", "404"} <= set(op["responses"])
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CancelResponse")
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["terminate"]["type"] == "boolean"
    assert set(doc["components"]["schemas"]["CancelResponse"]["properties"]) == {
        "message", "job"}
