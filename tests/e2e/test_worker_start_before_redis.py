"""A worker started before its Redis is usable waits for it, as Celery waits for a broker,
then works: it does not exit (a crash loop under a supervisor after every Redis restart).

Three ways Redis is not usable yet, each with a private redis-server and the shipped
defaults: nothing listens on the port (connection refused); Redis is loading its dataset
(``LOADING``, redis-py's BusyLoadingError); the worker's password is not set on Redis yet
(``WRONGPASS``, redis-py's AuthenticationError). In each the
worker is started, logs its wait, and is still running; then Redis becomes usable, the
worker becomes ready and a job enqueued then completes.

With ``broker_connection_retry_on_startup = False`` the worker fails at once, and with
``broker_connection_max_retries = 2`` after two retries, as Celery's own consumer does
(``celery.worker.consumer.consumer.Consumer.ensure_connected``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.core import JobStatus
from boundary_celery.redis_server import SLOW_LOADING_ARGS, RedisServer, free_port
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

APP = "tests.e2e.jobs_app"
WAIT_LINE = "Redis not usable at worker start; retrying"
PASSWORD, OLD_PASSWORD = "s3cret-new", "s3cret-old"


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f":{password}@{parts.netloc}"))


def down(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """Nothing listens on the server's port until the returned function starts it."""
    return server.url, server.start


def loading(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """The server restarted onto an RDB it loads slowly until the returned function lets
    it finish."""
    server.start().restart_loading()
    assert server.loading()
    return server.url, server.finish_loading


def password_not_set_yet(server: RedisServer) -> tuple[str, Callable[[], None]]:
    """Redis requires another password (say, the one being rotated out) until the returned
    function sets the worker's."""
    server.start()
    server.client().config_set("requirepass", OLD_PASSWORD)

    def set_password() -> None:
        server.client(password=OLD_PASSWORD).config_set("requirepass", PASSWORD)

    return with_password(server.url, PASSWORD), set_password


@pytest.fixture
def server() -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), extra_args=SLOW_LOADING_ARGS)
    yield server
    server.stop()


@pytest.mark.parametrize("not_usable", [down, loading, password_not_set_yet],
                         ids=["down", "loading", "password-not-set-yet"])
def test_worker_started_before_redis_waits_then_works(server, not_usable):
    url, make_usable = not_usable(server)
    box = Sandbox(url=url)
    q = box.queue()
    worker = WorkerProcess(APP, box.env(), [q], cwd=ROOT).start()
    try:
        try:
            wait_for(lambda: WAIT_LINE in worker.log_text() or not worker.running,
                     timeout=60, interval=0.1, message="the worker waits for Redis (or exits)")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log_text()[-3000:]}") from None
        assert worker.running, f"worker exited:\n{worker.log_text()[-3000:]}"
        make_usable()
        worker.wait_ready(timeout=60)
        app = Celery("start-before-redis")
        jobs = boundary_celery.install(app, box.settings())
        try:
            jid = jobs.enqueue("e2e.record", {"tag": "after-start"}, queue=q)
            wait_for(lambda: (job := jobs.find_job(jid)) and job.status is JobStatus.COMPLETED,
                     timeout=30, message="the job completes")
        finally:
            jobs.store.close()
        assert worker.running
        waits = [line for line in worker.log_text().splitlines() if WAIT_LINE in line]
        assert waits and all("WARNING" in line for line in waits)
        assert "Traceback" not in worker.log_text()
    finally:
        worker.stop()  # the private server goes at teardown, with the sandbox's keys


@pytest.mark.parametrize(("conf", "waits"), [
    ({"broker_connection_retry_on_startup": False}, 0),
    ({"broker_connection_max_retries": 2}, 2),
], ids=["no-retry-on-startup", "max-retries-2"])
def test_the_worker_gives_up_as_celery_settings_say(server, conf, waits):
    box = Sandbox(url=server.url)  # never started
    env = box.env(E2E_CELERY_CONF=json.dumps(conf))
    worker = WorkerProcess("tests.e2e.startup_retry_app", env, [box.queue()],
                           cwd=ROOT).start()
    try:
        wait_for(lambda: not worker.running, timeout=60, message="the worker exits")
        assert worker.proc is not None and worker.proc.returncode != 0
        assert worker.log_text().count(WAIT_LINE) == waits
    finally:
        worker.stop()
