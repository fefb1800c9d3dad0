"""Bad input on every enqueue path is a JobValidationError naming the field, raised
before anything reaches Redis: ``Jobs.enqueue/schedule/build_job/enqueue_many`` and a
``@boundary_job`` task's ``delay``/``apply_async``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from celery import Celery

import boundary_celery
from boundary_celery import boundary_job
from boundary_celery.core.errors import JobValidationError
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox

#: (option values, the field the error names), for the Jobs API and apply_async.
BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"metadata": [1]}, "metadata"),
    ({"metadata": "x"}, "metadata"),
    ({"metadata": {"a": object()}}, "metadata"),
    ({"priority": 1.5}, "priority"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": 99}, "priority"),
    ({"priority": [1]}, "priority"),
    ({"queue": 5}, "queue"),
    ({"queue": ""}, "queue"),
    ({"queue": ["a"]}, "queue"),
    ({"queue": "a b"}, "queue"),
    ({"max_retries": "3"}, "max_retries"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 100}, "max_retries"),
    ({"tenant_id": 5}, "tenant_id"),
    ({"tenant_id": ""}, "tenant_id"),
    ({"retry_policy": 5}, "retry_policy"),
    ({"retry_policy": {"initial_delay_ms": "x"}}, "initial_delay_ms"),
    ({"execute_at": "tomorrow"}, "execute_at"),
]
#: Only on the Jobs API (apply_async's own time and id options are Celery's).
JOBS_ONLY: list[tuple[dict[str, Any], str]] = [
    ({"execute_at": datetime(2030, 1, 1)}, "execute_at"),
    ({"execute_at": "2030-01-01T00:00:00"}, "execute_at"),
    ({"execute_at": 1_900_000_000}, "execute_at"),
    ({"job_id": "not-a-uuid"}, "job_id"),
    ({"job_id": 5}, "job_id"),
    ({"prority": "high"}, "prority"),
]
BAD_ARGS: list[Any] = [[1, 2], "abc", 5, {"a": {1, 2}}, {"a": float("nan")}, {1: 2},
                       {"a": b"x"}]


@pytest.fixture
def api(sandbox: Sandbox) -> tuple[Celery, Jobs, str]:
    app = Celery(f"bad-{sandbox.prefix}")
    jobs = boundary_celery.install(app, sandbox.settings())
    return app, jobs, sandbox.queue()


def nothing_stored(sandbox: Sandbox, jobs: Jobs, q: str) -> bool:
    return jobs.queue_size(q) == 0 and jobs.scheduled_count() == 0 and not any(
        sandbox.redis.scan_iter(f"{sandbox.prefix}*job*"))


def field(publish: Any) -> str:
    with pytest.raises(JobValidationError) as info:
        publish()
    return info.value.field


@pytest.mark.parametrize(("options", "name"), BAD_OPTIONS + JOBS_ONLY)
def test_jobs_api_options(sandbox, api, options, name):
    _, jobs, q = api
    opts = {"queue": q, **options}
    assert field(lambda: jobs.enqueue("bad.t", {}, **opts)) == name
    assert field(lambda: jobs.build_job("bad.t", {}, **opts)) == name
    assert field(lambda: jobs.enqueue_many([{"job_type": "bad.t", **opts}])) == name
    if "execute_at" not in options:
        assert field(lambda: jobs.schedule("bad.t", {}, execute_at="2030-01-01T00:00:00Z",
                                           **opts)) == name
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize("args", BAD_ARGS)
def test_jobs_api_args(sandbox, api, args):
    _, jobs, q = api
    assert field(lambda: jobs.enqueue("bad.t", args, queue=q)) == "args"
    assert field(lambda: jobs.enqueue_many([{"job_type": "bad.t", "args": args,
                                             "queue": q}])) == "args"
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize(("job_type", "name"), [
    (None, "job_type"), (5, "job_type"), (["a"], "job_type"), ("", "job_type"),
    ("x" * 201, "job_type")])
def test_jobs_api_job_type(api, job_type, name):
    _, jobs, q = api
    assert field(lambda: jobs.enqueue(job_type, {}, queue=q)) == name


@pytest.mark.parametrize(("execute_at", "reason"), [
    (None, "required"), (datetime(2030, 1, 1), "must be timezone-aware"),
    ("2030", "expected an ISO 8601 time"), (5, "expected a timezone-aware datetime")])
def test_schedule_needs_an_aware_time(api, execute_at, reason):
    _, jobs, q = api
    with pytest.raises(JobValidationError) as info:
        jobs.schedule("bad.t", {}, execute_at=execute_at, queue=q)
    assert (info.value.field, info.value.reason) == ("execute_at", reason)


def test_schedule_takes_an_iso_string(api):
    _, jobs, q = api
    job_id = jobs.schedule("bad.t", {}, execute_at="2030-01-01T00:00:00+00:00", queue=q)
    assert jobs.find_job(job_id).execute_at.isoformat() == "2030-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("items", "batch_size", "name"), [
    (5, 10, "items"), ("abc", 10, "items"), ([None], 10, "items[0]"), ([[1]], 10, "items[0]"),
    ([{"job_type": "bad.t", 1: 2}], 10, "1"), ([{"args": {}}], 10, "job_type"),
    ([{"job_type": "bad.t"}], 0, "batch_size"), ([{"job_type": "bad.t"}], "x", "batch_size"),
])
def test_enqueue_many_items_and_batch_size(sandbox, api, items, batch_size, name):
    _, jobs, q = api
    assert field(lambda: jobs.enqueue_many(items, batch_size=batch_size)) == name
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize(("options", "name"), BAD_OPTIONS)
def test_boundary_job_apply_async_options(sandbox, api, options, name):
    app, jobs, q = api

    @boundary_job(name=f"bad.declared.{uuid.uuid4().hex[:6]}", queue=q)
    def declared(x: int = 0) -> int:
        return x

    task = app.tasks[declared.name]
    assert field(lambda: task.apply_async((1,), **options)) == name
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"x", {1: "a"}])
def test_boundary_job_delay_args(sandbox, api, value):
    app, jobs, q = api

    @boundary_job(name=f"bad.declared.{uuid.uuid4().hex[:6]}", queue=q)
    def declared(x: Any = None) -> Any:
        return x

    assert field(lambda: app.tasks[declared.name].delay(value)) == "args"
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize(("call", "name"), [
    ({"args": 5}, "args"),
    ({"args": "ab"}, "args"),  # would otherwise be split into characters
    ({"kwargs": [1]}, "kwargs"),
    ({"headers": "x"}, "headers"),
    ({"headers": {"boundary": "x"}}, "headers.boundary"),
    ({"countdown": float("nan")}, "countdown"),
    ({"countdown": 1e300}, "countdown"),
])
def test_plain_task_apply_async_shapes(sandbox, api, call, name):
    app, jobs, q = api

    @app.task(name=f"bad.plain.{uuid.uuid4().hex[:6]}")
    def plain(*args: Any, **kwargs: Any) -> None:
        return None

    assert field(lambda: plain.apply_async(queue=q, **call)) == name
    assert nothing_stored(sandbox, jobs, q)
