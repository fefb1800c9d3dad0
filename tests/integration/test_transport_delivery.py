"""The transport's last net: an exception raised while one checked message is delivered
(kombu's message, ``QoS.append``, the consumer callback) dead-letters that message and
takes it out of the unacked hash, instead of stopping the worker's loop; a lost
connection is still raised for kombu to reconnect (real Redis, real kombu channel)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.adapters.redis_store import RedisJobStore
from tests.unit.test_shell_envelope import envelope

TRANSPORT = "boundary_celery.shell.transport:Transport"


@pytest.fixture
def store(sandbox) -> Iterator[RedisJobStore]:
    s = RedisJobStore(sandbox.url, prefix=sandbox.prefix)
    yield s
    s.close()


@pytest.fixture
def consume(sandbox, store) -> Iterator[Callable[[Callable[[Any], None]], tuple[Any, str, str]]]:
    """Consume a fresh queue with ``callback``; returns the connection, the queue and the
    raw message waiting in it."""
    conns: list[Connection] = []

    def start(callback: Callable[[Any], None], no_ack: bool = False) -> tuple[Any, str, str]:
        q = sandbox.queue()
        conn = Connection(sandbox.url, transport=TRANSPORT,
                          transport_options=store.broker_options())
        conns.append(conn)
        chan = conn.default_channel
        chan.basic_consume(q, no_ack=no_ack, callback=callback, consumer_tag=q)
        env = envelope()
        env["headers"]["id"] = str(uuid.uuid4())
        env["properties"]["delivery_tag"] = str(uuid.uuid4())
        env["properties"]["delivery_info"]["routing_key"] = q
        raw = json.dumps(env)
        sandbox.redis.lpush(list_key(q, 4), raw)
        return conn, q, raw

    yield start
    for conn in conns:
        conn.release()


def unacked(sandbox, conn) -> dict[str, str]:
    return sandbox.redis.hgetall(conn.default_channel.unacked_key)


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("exchange"),
                                   redis.exceptions.ResponseError("WRONGTYPE")])
def test_a_failing_delivery_is_dead_lettered_and_the_loop_goes_on(sandbox, store, consume,
                                                                  error):
    seen: list[Any] = []

    def callback(message: Any) -> None:
        seen.append(message)
        raise error

    conn, q, raw = consume(callback)
    conn.drain_events(timeout=5)  # returns: nothing raised out of the loop
    assert len(seen) == 1
    tag = seen[0].delivery_tag
    [dead] = store.failed_jobs(5)
    assert dead.error.type == "PoisonMessageError"
    assert dead.error.message.startswith("delivering the message failed: ")
    assert type(error).__name__ in dead.error.message
    assert dead.metadata["raw"] == raw
    assert dead.job_type == "e2e.record" and dead.queue == q
    assert tag not in unacked(sandbox, conn)  # acked: never delivered again
    assert tag not in conn.default_channel.holdings.held


def test_a_lost_connection_is_raised_and_the_message_stays_unacked(sandbox, store, consume):
    seen: list[Any] = []

    def callback(message: Any) -> None:
        seen.append(message)
        raise redis.exceptions.ConnectionError("connection lost")

    conn, _, raw = consume(callback)
    with pytest.raises(redis.exceptions.ConnectionError):
        conn.drain_events(timeout=5)
    tag = seen[0].delivery_tag
    assert store.dlq_size() == 0
    assert json.loads(unacked(sandbox, conn)[tag])[0] == json.loads(raw)  # delivered again
    conn.default_channel.qos.ack(tag)


def test_a_malformed_message_never_reaches_the_callback(sandbox, store, consume):
    seen: list[Any] = []
    conn, q, _ = consume(seen.append)
    bad = json.dumps(envelope(boundary="abc"))
    sandbox.redis.lpush(list_key(q, 0), bad)  # the most urgent list: read first
    conn.drain_events(timeout=5)
    assert seen == []
    [dead] = store.failed_jobs(5)
    assert dead.metadata["raw"] == bad
    assert dead.error.message == ("undeliverable broker message: headers.boundary: "
                                  "expected an object, got 'abc'")
    conn.drain_events(timeout=5)
    assert len(seen) == 1  # the good one after it
    seen[0].ack()


def test_a_reply_read_without_acks_is_not_a_task_message(sandbox, store, consume):
    """Replies (``celery inspect``, Flower) and results are read without acks: they are
    not held to the task message checks, and their reader's own errors reach it."""
    seen: list[Any] = []
    conn, q, raw = consume(seen.append, no_ack=True)
    reply = json.loads(raw)
    reply["headers"] = {"ticket": "t-1"}
    sandbox.redis.lpush(list_key(q, 0), json.dumps(reply))
    conn.drain_events(timeout=5)
    assert [m.headers for m in seen] == [{"ticket": "t-1"}]
    assert store.dlq_size() == 0

    def failing(message: Any) -> None:
        raise ValueError("the reader's bug")

    conn2, _, _ = consume(failing, no_ack=True)
    with pytest.raises(ValueError, match="the reader's bug"):
        conn2.drain_events(timeout=5)
    assert store.dlq_size() == 0
