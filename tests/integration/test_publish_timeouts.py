"""Redis faults on the publish path: every call waits at most ``[redis] timeout_ms``.

A real TCP peer on loopback (:class:`LoopbackRedis`) accepts connections and never
answers. ``jobs.enqueue``, ``task.delay()`` and ``enqueue_many`` raise
BrokerUnavailableError (also kombu's OperationalError) naming the broker and the
timeout: within T when no connection was open, within 3 x T + 0.2 s when one was
(shell/timeouts.py). The tests use a short T, since they are about the setting.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from kombu.exceptions import OperationalError

import boundary_celery
from boundary_celery.core.errors import BrokerUnavailableError
from boundary_celery.shell.jobs import Jobs
from boundary_celery.shell.timeouts import PUBLISH_RETRY_POLICY
from boundary_celery.testing import Sandbox
from tests.integration.loopback import LoopbackRedis

T_MS = 400
T = T_MS / 1000
#: Thread scheduling and Celery's first-publish setup on a busy machine.
SLACK = 0.6


@pytest.fixture
def dark() -> Iterator[LoopbackRedis]:
    server = LoopbackRedis()
    yield server
    server.close()


@pytest.fixture
def relay(sandbox: Sandbox) -> Iterator[LoopbackRedis]:
    if not sandbox.url.startswith("redis://"):
        pytest.skip("the loopback relay speaks TCP")
    server = LoopbackRedis(sandbox.url)
    yield server
    server.close()


def installed(sandbox: Sandbox, url: str, **conf: Any) -> tuple[Celery, Jobs]:
    app = Celery(f"timeouts-{uuid.uuid4().hex[:6]}")
    app.conf.update(conf)
    jobs = boundary_celery.install(
        app, sandbox.settings(redis={"url": url, "timeout_ms": T_MS}))

    @app.task(name="timeouts.noop", shared=False)
    def noop(x: int = 0) -> int:
        return x

    return app, jobs


def failure(publish: Callable[[], object]) -> tuple[float, BrokerUnavailableError]:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as info:
        publish()
    return time.monotonic() - started, info.value


def test_install_derives_the_bounds_from_timeout_ms(sandbox):
    app, _ = installed(sandbox, sandbox.url)
    options = app.conf.broker_transport_options
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (T, T)
    assert app.conf.broker_connection_timeout == T
    assert app.conf.task_publish_retry_policy == PUBLISH_RETRY_POLICY
    assert (app.conf.redis_socket_timeout, app.conf.redis_socket_connect_timeout) == (T, T)


def test_the_users_own_values_are_kept(sandbox):
    policy = {"max_retries": 2, "interval_start": 0, "interval_step": 1, "interval_max": 1}
    app, _ = installed(sandbox, sandbox.url,
                       broker_transport_options={"socket_timeout": 7},
                       broker_connection_timeout=9, task_publish_retry_policy=policy)
    options = app.conf.broker_transport_options
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (7, T)
    assert app.conf.broker_connection_timeout == 9
    assert app.conf.task_publish_retry_policy == policy


@pytest.mark.parametrize("how", ["enqueue", "schedule", "delay", "enqueue_many"])
def test_a_redis_that_never_answers_fails_the_publish_within_the_timeout(
        sandbox, dark, how):
    app, jobs = installed(sandbox, dark.url)
    q = sandbox.queue()
    publish = {
        "enqueue": lambda: jobs.enqueue("timeouts.noop", {"x": 1}, queue=q),
        "schedule": lambda: jobs.schedule("timeouts.noop", {}, queue=q,
                                          execute_at="2030-01-01T00:00:00Z"),
        "delay": lambda: app.tasks["timeouts.noop"].apply_async((1,), queue=q),
        "enqueue_many": lambda: jobs.enqueue_many([{"job_type": "timeouts.noop",
                                                     "queue": q}]),
    }[how]
    elapsed, error = failure(publish)
    assert elapsed < 3 * T, f"{how} took {elapsed:.2f} s against a {T_MS} ms timeout"
    assert elapsed >= T * 0.9  # it waited for the peer, it did not fail to connect
    assert dark.connections >= 1
    assert isinstance(error, OperationalError)  # what Celery callers already catch
    assert error.broker == dark.url and error.timeout_ms == T_MS
    assert f"broker {dark.url} unavailable (timeout {T_MS} ms per Redis call)" in str(error)


def test_a_normal_redis_still_works_afterwards(sandbox, dark):
    _, stuck = installed(sandbox, dark.url)
    failure(lambda: stuck.enqueue("timeouts.noop", {"x": 1}, queue=sandbox.queue()))
    _, jobs = installed(sandbox, sandbox.url)
    job_id = jobs.enqueue("timeouts.noop", {"x": 2}, queue=sandbox.queue())
    assert jobs.find_job(job_id).args == {"x": 2}


def test_a_redis_that_stops_answering_fails_within_three_timeouts_then_recovers(
        sandbox, relay):
    app, jobs = installed(sandbox, relay.url)
    q = sandbox.queue()
    first = jobs.enqueue("timeouts.noop", {"x": 1}, queue=q)  # a connection is open now
    relay.go_dark()
    for publish in (lambda: jobs.enqueue("timeouts.noop", {"x": 2}, queue=q),
                    lambda: app.tasks["timeouts.noop"].apply_async((3,), queue=q)):
        elapsed, error = failure(publish)
        assert elapsed < 3 * T + 0.2 + SLACK, f"took {elapsed:.2f} s"
        assert error.timeout_ms == T_MS
    relay.go_light()
    again = jobs.enqueue("timeouts.noop", {"x": 4}, queue=q)
    assert [jobs.find_job(i).args for i in (first, again)] == [{"x": 1}, {"x": 4}]
    assert jobs.queue_size(q) == 2


def test_a_redis_restart_costs_a_publish_nothing(sandbox, relay):
    """Every pooled connection dropped: the one publish retry reconnects."""
    app, jobs = installed(sandbox, relay.url)
    q = sandbox.queue()
    jobs.enqueue("timeouts.noop", {}, queue=q)
    app.tasks["timeouts.noop"].apply_async((1,), queue=q)
    relay.reset()
    job_id = jobs.enqueue("timeouts.noop", {"x": 5}, queue=q)
    relay.reset()
    app.tasks["timeouts.noop"].apply_async((6,), queue=q)
    assert jobs.find_job(job_id).args == {"x": 5}
    assert jobs.queue_size(q) == 4


def test_the_job_store_reads_are_bounded_too(sandbox, dark):
    """The store's client has its own socket timeout (``max(timeout_ms, 1 s)``)."""
    _, jobs = installed(sandbox, dark.url)
    started = time.monotonic()
    with pytest.raises(Exception, match="Timeout"):
        jobs.find_job(uuid.uuid4())
    assert time.monotonic() - started < max(T, 1.0) + SLACK
