"""A publish retried after a lost reply stores its job once.

Redis blocked (``DEBUG SLEEP``, a private server) longer than ``[redis] timeout_ms``:
the enqueue's reply times out while its command waits in Redis's socket buffer; kombu
publishes again on a new connection (``task_publish_retry_policy``, one retry). Both
commands run once Redis wakes: the second must find the first's token and store nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.core.errors import BrokerUnavailableError
from boundary_celery.redis_server import RedisServer
from boundary_celery.testing import Sandbox

T_MS = 1000


@pytest.fixture
def private() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=("--enable-debug-command", "yes"))
    server.start()
    yield server
    server.stop()


def _block(server: RedisServer, seconds: float) -> threading.Thread:
    client = server.client(socket_timeout=seconds + 5)
    client.ping()  # connected before Redis sleeps

    def sleep() -> None:
        with client:
            client.execute_command("DEBUG", "SLEEP", seconds)

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    time.sleep(0.2)  # DEBUG SLEEP has started: Redis answers nothing until it ends
    return thread


def _messages(box: Sandbox, q: str) -> list[str]:
    return [m for key in box.redis.scan_iter(f"{q}*") if box.redis.type(key) == "list"
            for m in box.redis.lrange(key, 0, -1)]


@pytest.mark.parametrize("how", ["enqueue", "delay"])
def test_a_publish_retried_after_its_reply_was_lost_stores_the_job_once(private, how):
    box = Sandbox(url=private.url)
    app = Celery(f"idem-{uuid.uuid4().hex[:6]}")
    jobs = boundary_celery.install(app, box.settings(redis={"timeout_ms": T_MS}))

    @app.task(name="idem.noop", shared=False)
    def noop(x: int = 0) -> int:
        return x

    q = box.queue()
    try:
        jobs.enqueue("idem.noop", {"x": 0}, queue=q)  # the connection is open and warm
        blocker = _block(private, 1.6)  # longer than T, shorter than the retry's wait
        started = time.monotonic()
        try:
            if how == "enqueue":
                job_id = jobs.enqueue("idem.noop", {"x": 1}, queue=q)
            else:
                job_id = noop.apply_async((1,), queue=q).id
        except BrokerUnavailableError:
            pytest.fail("the retried publish should have reached Redis once it woke")
        assert time.monotonic() - started >= T_MS / 1000  # the first reply was lost
        blocker.join(10)
        ids = [m for m in _messages(box, q) if job_id in m]
        assert len(ids) == 1, f"{len(ids)} copies of {job_id} stored"
        assert len(_messages(box, q)) == 2
        assert jobs.queue_stats(q).size == 2
    finally:
        jobs.store.close()
        box.cleanup()
