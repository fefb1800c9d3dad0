"""Shared fixtures: a private Redis sandbox per test and real worker subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from celery import Celery

import boundary_celery
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox, WorkerProcess, test_redis_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = test_redis_url()
    try:
        redis_lib.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis_lib.exceptions.ConnectionError as exc:
        pytest.fail(f"no Redis answers at {url} (make test starts one): {exc}")
    return url


@pytest.fixture
def sandbox(redis_url: str) -> Iterator[Sandbox]:
    box = Sandbox(url=redis_url)
    yield box
    box.cleanup()


@pytest.fixture
def make_jobs(sandbox: Sandbox) -> Callable[..., tuple[Celery, Jobs]]:
    """Build a publisher-side app installed on the sandbox (settings overrides as dicts)."""

    def make(**overrides: Any) -> tuple[Celery, Jobs]:
        app = Celery(f"test-{sandbox.prefix}")
        jobs = boundary_celery.install(app, sandbox.settings(**overrides))
        return app, jobs

    return make


@pytest.fixture
def worker_factory(sandbox: Sandbox) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real ``celery worker`` subprocesses; all are stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(queues: list[str], app_module: str = "tests.e2e.jobs_app", *,
              concurrency: int = 1, env: dict[str, Any] | None = None,
              wait: bool = True) -> WorkerProcess:
        worker = WorkerProcess(app_module, sandbox.env(**(env or {})), queues,
                               concurrency=concurrency, cwd=ROOT)
        started.append(worker)
        worker.start()
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:  # all at once: each warm shutdown takes a second or two
        worker.begin_stop()
    for worker in started:
        worker.stop()
