"""The admin API over a real Redis, with jobs run by a real ``celery worker``."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from boundary_celery.admin import create_admin_app
from boundary_celery.core.priority import Priority
from boundary_celery.testing import Sandbox, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: 'use httpx2'
    from starlette.testclient import TestClient

API = "/api/admin/jobs"
#: Without a token the admin app answers only requests addressed to a loopback name.
LOCAL = "http://127.0.0.1"


def client_for(jobs: Any, **admin: Any) -> TestClient:
    settings = jobs.settings.admin.model_copy(update=admin) if admin else None
    return TestClient(create_admin_app(jobs, settings), base_url=LOCAL)


def processed(jobs: Any, queue: str) -> int:
    return jobs.queue_stats(queue).processed_total


@pytest.mark.e2e
def test_endpoints_match_the_jobs_that_ran(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    q, idle = sandbox.queue("q"), sandbox.queue("idle")
    _, jobs = make_jobs()
    worker_factory([q])
    ok_ids = [jobs.enqueue("e2e.record", {"tag": f"t{i}"}, queue=q) for i in range(3)]
    bad = jobs.enqueue("e2e.always_fail", {"key": "k"}, queue=q)
    wait_for(lambda: processed(jobs, q) == 4 and jobs.dlq_size() == 1, 15, message="4 outcomes")
    # Jobs waiting on a queue nobody consumes, at two levels.
    jobs.enqueue("e2e.record", {"tag": "h"}, queue=idle, priority="high")
    jobs.enqueue("e2e.record", {"tag": "b1"}, queue=idle, priority="bulk")
    jobs.enqueue("e2e.record", {"tag": "b2"}, queue=idle, priority="bulk")
    c = client_for(jobs)

    stats = c.get(f"{API}/stats")
    assert stats.status_code == 200
    body = stats.json()
    assert body == jobs.job_stats().model_dump(mode="json")
    assert (body["total_processed"], body["total_succeeded"], body["total_failed"],
            body["total_retried"]) == (4, 3, 1, 2)
    assert body["active_workers"] >= 1
    assert body["dlq_size"] == 1
    by_name = {s["queue_name"]: s for s in body["queues"]}
    assert by_name[q]["processed_total"] == 4 and by_name[q]["size"] == 0
    assert by_name[q]["avg_duration_ms"] > 0
    assert by_name[idle]["size"] == 3
    assert by_name[idle]["size_by_priority"] == {
        "critical": 0, "high": 1, "normal": 0, "low": 0, "bulk": 2}

    failed = c.get(f"{API}/failed", params={"limit": 5}).json()
    assert failed["limit"] == 5 and failed["dlq_size"] == 1
    [dead] = failed["jobs"]
    assert dead["id"] == bad and dead["job_type"] == "e2e.always_fail"
    assert dead["status"] == "failed" and dead["retry_count"] == 3
    assert dead["error"]["message"] == "boom k" and dead["error"]["type"] == "ValueError"
    assert dead["completed_at"] is not None
    assert c.get(f"{API}/failed").json()["limit"] == 20  # the guide's default

    detail = c.get(f"{API}/{ok_ids[1]}").json()
    assert detail["job"]["status"] == "completed" and detail["job"]["result"] == "t1"
    assert detail["job"]["queue"] == q and detail["attempts"] == 1
    assert detail["worker"] and detail["in_dlq"] is False
    assert c.get(f"{API}/{bad}").json()["in_dlq"] is True

    size = c.get(f"{API}/queues/{idle}/size").json()
    assert size == {"queue_name": idle, "size": 3,
                    "size_by_priority": jobs.queue_sizes_by_priority(idle)}
    assert c.get(f"{API}/queues/{q}/size").json()["size"] == 0
    assert set(c.get(f"{API}/queues").json()["queues"]) >= {q, idle}


@pytest.mark.e2e
def test_retry_of_a_dlq_job_over_http_makes_it_run(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    q = sandbox.queue("q")
    _, jobs = make_jobs()
    worker_factory([q])
    # Fails once, no retries allowed: straight to the DLQ. The second run succeeds.
    jid = jobs.enqueue("e2e.flaky", {"key": "r", "failures": 1}, queue=q, max_retries=0)
    wait_for(lambda: jobs.dlq_size() == 1, 10, message="job dead-lettered")
    c = client_for(jobs)

    res = c.post(f"{API}/{jid}/retry")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["message"] == "Job queued for retry"
    assert body["job"]["id"] == jid and body["job"]["status"] == "pending"

    def completed() -> Any:
        job = jobs.find_job(jid)
        return job if job is not None and job.status.value == "completed" else None

    done = wait_for(completed, 10, message="retried job ran")
    assert done.result == {"attempts": 2}
    assert jobs.dlq_size() == 0
    assert sandbox.redis.llen(f"{sandbox.prefix}:attempts:r") == 2
    # A job that is no longer dead cannot be retried again.
    again = c.post(f"{API}/{jid}/retry")
    assert again.status_code == 409 and "not in the dead letter queue" in again.json()["error"]


@pytest.mark.e2e
def test_purge_one_then_all(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    q = sandbox.queue("q")
    _, jobs = make_jobs()
    worker_factory([q])
    ids = [jobs.enqueue("e2e.flaky", {"key": f"p{i}", "failures": 9}, queue=q, max_retries=0)
           for i in range(3)]
    wait_for(lambda: jobs.dlq_size() == 3, 10, message="3 dead jobs")
    c = client_for(jobs)

    one = c.delete(f"{API}/failed/{ids[0]}")
    assert one.status_code == 200 and one.json() == {"purged": 1}
    assert c.get(f"{API}/{ids[0]}").status_code == 404  # the record is gone too
    assert c.delete(f"{API}/failed/{ids[0]}").status_code == 404
    assert c.delete(f"{API}/failed").json() == {"purged": 2}
    assert jobs.dlq_size() == 0
    assert c.get(f"{API}/failed").json()["jobs"] == []


def test_bad_input_is_a_clear_4xx(sandbox: Sandbox, make_jobs: Callable[..., Any]) -> None:
    q = sandbox.queue("q")
    _, jobs = make_jobs()
    pending = jobs.enqueue("e2e.record", {"tag": "x"}, queue=q)  # no worker: stays pending
    c = client_for(jobs)
    unknown = str(uuid.uuid4())

    cases: list[tuple[str, str, int, str]] = [
        ("GET", f"{API}/{unknown}", 404, "not found"),
        ("POST", f"{API}/{unknown}/retry", 404, "not found"),
        ("DELETE", f"{API}/failed/{unknown}", 404, "not in the dead letter queue"),
        ("POST", f"{API}/{pending}/retry", 409, "not in the dead letter queue"),
        ("GET", f"{API}/not-a-uuid", 400, "must be a UUID"),
        ("POST", f"{API}/123/retry", 400, "must be a UUID"),
        ("DELETE", f"{API}/failed/zzz", 400, "must be a UUID"),
        ("POST", f"{API}/{pending}/retry?reset_retries=maybe", 400, "true or false"),
        ("GET", f"{API}/failed?limit=0", 400, "between 1 and 1000"),
        ("GET", f"{API}/failed?limit=1001", 400, "between 1 and 1000"),
        ("GET", f"{API}/failed?limit=-3", 400, "between 1 and 1000"),
        ("GET", f"{API}/failed?limit=ten", 400, "integer"),
        ("GET", f"{API}/scheduled?limit=99999", 400, "between 1 and 1000"),
        ("GET", f"{API}/queues/no-such-queue/size", 404, "unknown queue"),
        ("GET", "/api/admin/nothing", 404, "no route"),
        ("PUT", f"{API}/stats", 405, ""),
    ]
    for method, path, status, words in cases:
        res = c.request(method, path)
        assert res.status_code == status, (method, path, res.status_code, res.text)
        body = res.json()
        assert body["status"] == status and words in body["error"], (path, body)
    assert c.get(f"{API}/queues/{q}/size").json()["size_by_priority"][Priority.NORMAL.value] == 1


def test_declared_queue_is_known_before_use(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs(store={"declared_queues": ["declared-only"]})
    res = client_for(jobs).get(f"{API}/queues/declared-only/size")
    assert res.status_code == 200 and res.json()["size"] == 0


def test_auth_is_enforced_on_every_route_when_configured(
    sandbox: Sandbox, make_jobs: Callable[..., Any]
) -> None:
    q = sandbox.queue("q")
    _, jobs = make_jobs(admin={"token": "s3cret", "metrics_token": "scrape"})
    jid = jobs.enqueue("e2e.record", {"tag": "x"}, queue=q)
    c = TestClient(create_admin_app(jobs))  # settings from jobs.settings.admin
    routes = [("GET", f"{API}/stats"), ("GET", f"{API}/failed"), ("DELETE", f"{API}/failed"),
              ("DELETE", f"{API}/failed/{jid}"), ("GET", f"{API}/scheduled"),
              ("GET", f"{API}/queues"), ("GET", f"{API}/queues/{q}/size"),
              ("GET", f"{API}/{jid}"), ("POST", f"{API}/{jid}/retry"),
              ("GET", "/openapi.json")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                        {"Authorization": "Bearer scrape"}):
            res = c.request(method, path, headers=headers)
            assert res.status_code == 401, (method, path, headers, res.status_code)
            assert res.headers["www-authenticate"].startswith("Bearer")
            assert "bearer token" in res.json()["error"]
        res = c.request(method, path, headers={"Authorization": "Bearer s3cret"})
        assert res.status_code in (200, 404, 409), (method, path, res.text)
    assert c.get(f"{API}/{jid}", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # /metrics takes its own token (or the admin one).
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer scrape"}).status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # The static dashboard page holds no data; it asks for the token itself.
    assert c.get("/dashboard").status_code == 200
    # No token configured: open.
    assert client_for(jobs, token=None, metrics_token=None).get(f"{API}/stats").status_code == 200


def test_openapi_document_is_served(make_jobs: Callable[..., Any]) -> None:
    _, jobs = make_jobs()
    doc = client_for(jobs).get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in (f"{API}/stats", f"{API}/failed", f"{API}/{{id}}/retry",
                 f"{API}/queues/{{name}}/size", f"{API}/{{id}}", f"{API}/failed/{{id}}",
                 "/metrics"):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert {"JobStatsReport", "QueueStats", "Job", "ErrorBody", "RetryResponse"} <= set(schemas)
    assert set(schemas["JobStatsReport"]["properties"]) >= {
        "total_processed", "total_succeeded", "total_failed", "active_workers", "queues"}
    assert set(schemas["QueueStats"]["properties"]) >= {
        "queue_name", "size", "processed_total", "succeeded_total", "failed_total",
        "avg_duration_ms"}
