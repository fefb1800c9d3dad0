"""``[store] max_args_bytes``: args whose JSON is over the limit are refused at the
producer with JobValidationError("args", size, ...), on the Jobs API and on plain Celery
publishes (``BoundaryAMQP``), before anything reaches Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

import boundary_celery
from boundary_celery import boundary_job
from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import create_job
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox
from tests.integration.loopback import LoopbackRedis

LIMIT = 1000


def installed(sandbox: Sandbox, url: str | None = None, **store: Any) -> tuple[Celery, Jobs]:
    app = Celery(f"size-{uuid.uuid4().hex[:6]}")
    settings = sandbox.settings(store=store, **({"redis": {"url": url}} if url else {}))
    jobs = boundary_celery.install(app, settings)

    @app.task(name="size.plain", shared=False)
    def plain(blob: str = "", n: int = 0) -> int:
        return len(blob)

    @app.task(name="size.star", shared=False)
    def star(*parts: str) -> int:
        return len(parts)

    return app, jobs


def size_of(args: dict[str, Any]) -> int:
    return len(json.dumps(args))


def assert_over(info: pytest.ExceptionInfo[JobValidationError], size: int, limit: int) -> None:
    err = info.value
    assert (err.field, err.value) == ("args", size)
    assert err.reason == f"{size} bytes of JSON, over the max_args_bytes limit of {limit}"


def nothing_stored(sandbox: Sandbox, jobs: Jobs, q: str) -> bool:
    return jobs.queue_size(q) == 0 and jobs.scheduled_count() == 0 and not any(
        sandbox.redis.scan_iter(f"{sandbox.prefix}*job*"))


@pytest.fixture
def dark() -> Iterator[LoopbackRedis]:
    server = LoopbackRedis()
    yield server
    server.close()


def test_enqueue_up_to_the_limit_passes_one_byte_more_is_refused(sandbox):
    _, jobs = installed(sandbox, max_args_bytes=LIMIT)
    q = sandbox.queue()
    fits = {"blob": "x" * (LIMIT - size_of({"blob": ""}))}
    assert size_of(fits) == LIMIT
    job_id = jobs.enqueue("size.plain", fits, queue=q)
    assert jobs.find_job(job_id).args == fits
    over = {"blob": fits["blob"] + "y"}
    for publish in (lambda: jobs.enqueue("size.plain", over, queue=q),
                    lambda: jobs.schedule("size.plain", over, queue=q,
                                          execute_at="2030-01-01T00:00:00+00:00"),
                    lambda: jobs.build_job("size.plain", over, queue=q)):
        with pytest.raises(JobValidationError) as info:
            publish()
        assert_over(info, LIMIT + 1, LIMIT)
    assert jobs.queue_size(q) == 1 and jobs.scheduled_count() == 0


def test_the_default_limit_is_one_mebibyte(sandbox):
    _, jobs = installed(sandbox)
    assert jobs.settings.store.max_args_bytes == 1_048_576
    q = sandbox.queue()
    big = {"blob": "x" * 1_048_576}
    with pytest.raises(JobValidationError) as info:
        jobs.enqueue("size.plain", big, queue=q)
    assert_over(info, size_of(big), 1_048_576)
    assert nothing_stored(sandbox, jobs, q)


def test_non_ascii_args_are_measured_as_sent(sandbox):
    """kombu writes JSON ASCII-only: one snowman is six bytes (\\u2603)."""
    _, jobs = installed(sandbox, max_args_bytes=LIMIT)
    args = {"s": "☃" * 200}
    assert size_of(args) == 1209
    with pytest.raises(JobValidationError) as info:
        jobs.enqueue("size.plain", args, queue=sandbox.queue())
    assert_over(info, 1209, LIMIT)


def test_enqueue_many_refuses_the_batch_before_sending_any(sandbox):
    _, jobs = installed(sandbox, max_args_bytes=LIMIT)
    q = sandbox.queue()
    items = [{"job_type": "size.plain", "args": {"n": 1}, "queue": q},
             {"job_type": "size.plain", "args": {"blob": "x" * LIMIT}, "queue": q}]
    with pytest.raises(JobValidationError) as info:
        jobs.enqueue_many(items)
    assert_over(info, size_of(items[1]["args"]), LIMIT)
    assert nothing_stored(sandbox, jobs, q)


def test_the_port_form_is_measured_too(sandbox):
    _, jobs = installed(sandbox, max_args_bytes=LIMIT)
    q = sandbox.queue()
    job = create_job({"job_type": "size.plain", "args": {"blob": "x" * LIMIT}}, uuid.uuid4())
    with pytest.raises(JobValidationError) as info:
        jobs.enqueue_job(q, job)
    assert_over(info, size_of(job.args), LIMIT)
    assert nothing_stored(sandbox, jobs, q)


@pytest.mark.parametrize("call", ["delay", "apply_async", "send_task", "star", "declared"])
def test_a_plain_celery_publish_is_refused_at_the_producer(sandbox, call):
    app, jobs = installed(sandbox, max_args_bytes=LIMIT)
    q = sandbox.queue()
    blob = "x" * LIMIT

    @boundary_job(name=f"size.declared.{uuid.uuid4().hex[:6]}", queue=q)
    def declared(blob: str) -> int:
        return len(blob)

    app.loader.import_default_modules()
    publish, args = {
        "delay": (lambda: app.tasks["size.plain"].delay(blob), {"blob": blob}),
        "apply_async": (lambda: app.tasks["size.plain"].apply_async(kwargs={"blob": blob},
                                                                    queue=q), {"blob": blob}),
        "send_task": (lambda: app.send_task("size.plain", args=[blob], queue=q),
                      {"blob": blob}),
        "star": (lambda: app.tasks["size.star"].delay(blob),
                 {"args": [blob], "kwargs": {}}),
        "declared": (lambda: app.tasks[declared.name].delay(blob), {"blob": blob}),
    }[call]
    with pytest.raises(JobValidationError) as info:
        publish()
    assert_over(info, size_of(args), LIMIT)
    assert nothing_stored(sandbox, jobs, q)
    assert jobs.queue_size(app.conf.task_default_queue) == 0


def test_no_redis_call_is_made_before_the_refusal(sandbox, dark):
    """Against a Redis that never answers, the size error comes at once, with no
    connection opened: the limit is checked before any Redis call."""
    app, jobs = installed(sandbox, url=dark.url, max_args_bytes=LIMIT)
    big = "x" * LIMIT
    for publish in (lambda: jobs.enqueue("size.plain", {"blob": big}),
                    lambda: app.tasks["size.plain"].delay(big)):
        started = time.monotonic()
        with pytest.raises(JobValidationError, match="over the max_args_bytes limit"):
            publish()
        assert time.monotonic() - started < 0.5
    assert dark.connections == 0
