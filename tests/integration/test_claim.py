"""The claim fetch on a real Redis: ``claim.lua`` takes the most urgent message and records
it unacked in the same step (so a reply lost on the way loses nothing), an empty set of
lists answers the wake id to block after, a list that gets its first message tells the
wake stream, the lease sweep hands a claimed-but-never-delivered message back, and a
Redis out of memory refuses the claim with the message still in its list."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.redis_server import RedisServer
from tests.unit.test_shell_envelope import envelope

TRANSPORT = "boundary_celery.shell.transport:Transport"


@pytest.fixture
def store(sandbox) -> Iterator[RedisJobStore]:
    s = RedisJobStore(sandbox.url, prefix=sandbox.prefix)
    yield s
    s.close()


def message(queue: str) -> tuple[str, str]:
    """A kombu task message for ``queue`` and its delivery tag."""
    env = envelope()
    tag = str(uuid.uuid4())
    env["headers"]["id"] = str(uuid.uuid4())
    env["properties"]["delivery_tag"] = tag
    env["properties"]["delivery_info"]["routing_key"] = queue
    return json.dumps(env), tag


def test_claim_takes_the_most_urgent_and_records_it_unacked(sandbox, store):
    r, q = sandbox.redis, sandbox.queue()
    lists = [list_key(q, step) for step in (0, 2, 4)]
    low, _ = message(q)
    first, first_tag = message(q)
    second, _ = message(q)
    r.lpush(lists[2], low)
    r.lpush(lists[1], first, second)  # FIFO: first pushed, first claimed
    now = time.time()

    index, raw, tag = store.deliveries.claim_call(lists, now).run(r)

    assert (index, raw, tag) == (2, first, first_tag)
    assert r.lrange(lists[1], 0, -1) == [second]
    payload, exchange, routing_key = json.loads(r.hget(store.keys.unacked, tag))
    assert payload == json.loads(first) and exchange == "" and routing_key == q
    assert r.zscore(store.keys.unacked_index, tag) == pytest.approx(now)


def test_claim_of_empty_lists_answers_the_wake_id_and_a_first_message_wakes(sandbox, store):
    r, q = sandbox.redis, sandbox.queue()
    target = list_key(q, 0)
    index, after = store.deliveries.claim_call([target], time.time()).run(r)
    assert index == 0

    blocked = redis.Redis.from_url(sandbox.url, decode_responses=True)
    try:
        raw, _ = message(q)
        store.enqueue_call(q, target, raw, str(uuid.uuid4())).run(r)
        woke = blocked.execute_command(*store.deliveries.wait_command(after, 2000))
        assert woke, "the wait returns once the list got its first message"
        length = r.xlen(store.keys.lists_wake)
        store.enqueue_call(q, target, message(q)[0], str(uuid.uuid4())).run(r)
        assert r.xlen(store.keys.lists_wake) == length  # not empty before: nobody waits
        _, last = store.deliveries.claim_call([list_key(q, 2)], time.time()).run(r)
        started = time.monotonic()
        assert not blocked.execute_command(*store.deliveries.wait_command(last, 300))
        assert time.monotonic() - started >= 0.25  # bounded by its timeout
    finally:
        blocked.close()


def test_an_unreadable_message_is_taken_without_a_record(sandbox, store):
    q = sandbox.queue()
    r = redis.Redis.from_url(sandbox.url)  # bytes: the message is not UTF-8
    try:
        r.lpush(list_key(q, 0), b"\xff not json")
        reply = store.deliveries.claim_call([list_key(q, 0)], time.time()).run(r)
        assert reply == [1, b"\xff not json"]  # no tag: nothing recorded
        assert r.hlen(store.keys.unacked) == 0 and r.llen(list_key(q, 0)) == 0
    finally:
        r.close()


def test_a_claim_whose_reply_was_lost_is_delivered_again_by_the_lease_sweep(sandbox, store):
    """The worker that claimed it never saw the reply (Redis killed after the write): no
    one holds its lease, so the sweep puts it back at the front of its list."""
    r, q = sandbox.redis, sandbox.queue()
    raw, tag = message(q)
    r.lpush(list_key(q, 4), raw)
    lapsed = time.time() - 3600
    assert store.deliveries.claim_call([list_key(q, 4)], lapsed).run(r)[2] == tag
    assert r.llen(list_key(q, 4)) == 0
    woken = r.xlen(store.keys.lists_wake)

    conn = Connection(sandbox.url, transport=TRANSPORT,
                      transport_options=store.broker_options())
    try:
        conn.default_channel.qos.restore_visible(num=10)
    finally:
        conn.release()

    back = r.lrange(list_key(q, 4), 0, -1)
    assert len(back) == 1 and json.loads(back[0])["properties"]["delivery_tag"] == tag
    assert r.hlen(store.keys.unacked) == 0 and r.zcard(store.keys.unacked_index) == 0
    assert r.xlen(store.keys.lists_wake) == woken + 1  # idle workers told


def test_a_redis_out_of_memory_refuses_the_claim_and_keeps_the_message():
    server = RedisServer(extra_args=("--maxmemory-policy", "noeviction"))
    server.start()
    try:
        r = server.client(decode_responses=True)
        store = RedisJobStore(server.url, prefix="oom")
        q = "oom-q"
        raw, _ = message(q)
        r.lpush(q, raw)
        r.config_set("maxmemory", 1)
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            store.deliveries.claim_call([q], time.time()).run(r)
        assert r.lrange(q, 0, -1) == [raw]
        r.config_set("maxmemory", 0)
        assert store.deliveries.claim_call([q], time.time()).run(r)[1] == raw
        store.close()
    finally:
        server.stop()


def test_a_message_of_another_shape_is_decoded_for_its_tag(sandbox, store):
    """Not kombu's key order (the tag not last): the claim decodes it and still records it
    under its own tag, back to the queue it was claimed from."""
    r, q = sandbox.redis, sandbox.queue()
    raw, tag = message(q)
    env = json.loads(raw)
    env["properties"] = {"delivery_tag": tag, **env["properties"]}
    env = {"properties": env["properties"], **{k: v for k, v in env.items()
                                               if k != "properties"}}
    raw = json.dumps(env)
    assert not raw.endswith('"}}')
    r.lpush(list_key(q, 0), raw)
    assert store.deliveries.claim_call([list_key(q, 0)], time.time()).run(r)[2] == tag
    payload, exchange, queue = json.loads(r.hget(store.keys.unacked, tag))
    assert payload == env and (exchange, queue) == ("", q)


def test_an_ack_redis_cannot_take_is_deferred_and_made_by_the_next_sweep():
    """Redis down when a job's ack comes (a restart): no error reaches Celery, the
    delivery stays held (its lease renewed, never delivered again) and the first sweep
    after Redis is back acks it."""
    server = RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    conn = None
    try:
        r = server.client(decode_responses=True)
        store = RedisJobStore(server.url, prefix="ack")
        q = "ack-q"
        raw, tag = message(q)
        r.lpush(q, raw)
        conn = Connection(server.url, transport=TRANSPORT,
                          transport_options=store.broker_options())
        got = []
        conn.default_channel.basic_consume(q, no_ack=False, callback=got.append,
                                           consumer_tag=q)
        conn.drain_events(timeout=5)
        assert [m.delivery_tag for m in got] == [tag]
        assert r.hexists(store.keys.unacked, tag)

        down = threading.Thread(target=server.restart, kwargs={"down_s": 1.5})
        down.start()
        time.sleep(0.3)
        got[0].ack()  # Redis is down: deferred, not raised
        holdings = conn.default_channel.holdings
        assert tag in holdings.acks_due and tag in holdings.held
        down.join(timeout=30)

        r = server.client(decode_responses=True)
        assert r.hexists(store.keys.unacked, tag)  # the AOF kept the delivery
        conn.default_channel.qos.restore_visible(num=10)
        assert not r.hexists(store.keys.unacked, tag)
        assert r.zscore(store.keys.unacked_index, tag) is None
        assert tag not in holdings.acks_due and tag not in holdings.held
        assert r.llen(q) == 0  # acked, not delivered again
        store.close()
    finally:
        if conn is not None:
            conn.release()
        server.stop()
