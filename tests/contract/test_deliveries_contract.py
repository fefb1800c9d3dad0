"""Contract of the deliveries' owner (``adapters.deliveries``): claim, record, renew,
sweep, hand back and ack behave alike in memory and on a real Redis (where the claim is
``claim.lua``), and both write kombu's unacked entry byte for byte as kombu does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from boundary_celery.adapters.deliveries import (
    Holdings,
    MemoryDeliveries,
    RedisDeliveries,
    unacked_entry,
)
from boundary_celery.adapters.redis_keys import Keys, list_key
from tests.unit.test_shell_envelope import envelope

T0 = 1_700_000_000.0


@dataclass
class Ledger:
    """One implementation, with how to publish to and read its lists."""

    name: str
    deliveries: Any
    push: Callable[[str, str], None]
    items: Callable[[str], list[str]]
    queue: str


@pytest.fixture(params=("memory", "redis"))
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "memory":
        memory = MemoryDeliveries()
        yield Ledger("memory", memory, memory.push,
                     lambda name: list(memory.lists.get(name, ())),
                     f"q-{uuid.uuid4().hex[:8]}")
        return
    sandbox = request.getfixturevalue("sandbox")
    r = sandbox.redis
    yield Ledger("redis", RedisDeliveries(Keys(sandbox.prefix), r),
                 lambda name, message: r.lpush(name, message),
                 lambda name: r.lrange(name, 0, -1), sandbox.queue())


def message(queue: str, priority: int = 0) -> tuple[str, str]:
    """A kombu task message for ``queue`` (its delivery tag last, as kombu writes it)."""
    env = envelope()
    tag = str(uuid.uuid4())
    env["headers"]["id"] = str(uuid.uuid4())
    env["properties"]["priority"] = priority
    env["properties"]["delivery_info"]["routing_key"] = queue
    env["properties"]["delivery_tag"] = tag
    return json.dumps(env), tag


def test_the_claim_takes_the_most_urgent_list_first_and_writes_kombus_entry(ledger):
    q = ledger.queue
    lists = [list_key(q, step) for step in (0, 2, 4)]
    low, _ = message(q, 4)
    first, first_tag = message(q, 2)
    second, _ = message(q, 2)
    ledger.push(lists[2], low)
    ledger.push(lists[1], first)
    ledger.push(lists[1], second)

    claimed = ledger.deliveries.claim(lists, T0)

    assert claimed is not None and (claimed.index, claimed.tag) == (1, first_tag)
    assert claimed.message == first  # first published, first claimed
    entry = ledger.deliveries.entry(first_tag)
    # The Python encoder and claim.lua agree byte for byte, and that is kombu's format.
    assert entry == unacked_entry(first, "", q) == kombu_dumps([json.loads(first), "", q])
    assert kombu_loads(entry) == [json.loads(first), "", q]
    assert ledger.deliveries.leases() == {first_tag: pytest.approx(T0)}
    assert ledger.items(lists[1]) == [second]


def test_a_claim_of_empty_lists_takes_nothing(ledger):
    assert ledger.deliveries.claim([list_key(ledger.queue, 0)], T0) is None
    assert ledger.deliveries.leases() == {}


def test_renew_restarts_held_leases_and_never_brings_back_an_acked_one(ledger):
    q = ledger.queue
    a, tag_a = message(q)
    b, tag_b = message(q)
    ledger.deliveries.record(tag_a, unacked_entry(a, "", q), T0)
    ledger.deliveries.record(tag_b, unacked_entry(b, "", q), T0)
    ledger.deliveries.ack(tag_b)

    ledger.deliveries.renew([tag_a, tag_b], T0 + 30)

    assert ledger.deliveries.leases() == {tag_a: pytest.approx(T0 + 30)}
    assert ledger.deliveries.entry(tag_b) is None


def test_the_sweep_finds_lapsed_leases_oldest_first_but_never_held_ones(ledger):
    q = ledger.queue
    tags = []
    for age in (50, 70, 60, 5):
        raw, tag = message(q)
        ledger.deliveries.record(tag, unacked_entry(raw, "", q), T0 - age)
        tags.append(tag)
    held = Holdings()
    held.hold(tags[2])

    lapsed = ledger.deliveries.lapsed(T0 - 30, 10, held.held)

    assert lapsed == [tags[1], tags[0]]  # 70 s, then 50 s old; 60 s is held; 5 s is live
    assert ledger.deliveries.lapsed(T0 - 30, 1) == [tags[1]]  # at most `limit`


def test_a_hand_back_puts_the_message_next_in_line_once_marked_redelivered(ledger):
    q = ledger.queue
    target = list_key(q, 2)
    waiting, _ = message(q, 2)
    ledger.push(target, waiting)
    raw, tag = message(q, 2)
    ledger.deliveries.record(tag, unacked_entry(raw, "", q), T0)

    assert ledger.deliveries.hand_back(tag) is True
    assert ledger.deliveries.hand_back(tag) is False  # once

    assert ledger.deliveries.entry(tag) is None and tag not in ledger.deliveries.leases()
    again = ledger.deliveries.claim([target], T0 + 1)
    assert again is not None and again.tag == tag  # before the one that waited
    body = json.loads(again.message)
    assert body["headers"]["redelivered"] is True
    assert body["properties"]["delivery_info"]["redelivered"] is True


def test_a_requeue_hands_back_last_in_line(ledger):
    q = ledger.queue
    waiting, waiting_tag = message(q)
    ledger.push(list_key(q, 0), waiting)
    raw, tag = message(q)
    ledger.deliveries.record(tag, unacked_entry(raw, "", q), T0)

    ledger.deliveries.hand_back(tag, leftmost=True)

    first = ledger.deliveries.claim([list_key(q, 0)], T0)
    assert first is not None and first.tag == waiting_tag


def test_an_acked_delivery_is_never_handed_back(ledger):
    q = ledger.queue
    raw, tag = message(q, 6)
    ledger.deliveries.record(tag, unacked_entry(raw, "", q), T0)

    ledger.deliveries.ack(tag)

    assert ledger.deliveries.hand_back(tag) is False
    assert ledger.items(list_key(q, 6)) == []
    assert ledger.deliveries.lapsed(T0 + 3600, 10) == []


def test_holdings_release_what_the_pool_has_not_started():
    holdings = Holdings()
    for tag in ("a", "b", "c"):
        holdings.hold(tag)
    holdings.defer_ack("d")

    assert holdings.release_unstarted({"b", "d"}) == 2
    assert holdings.held.tags() == ["b", "d"] and "d" in holdings.acks_due
    holdings.orphan("e", object())
    assert [tag for tag, _ in holdings.take_orphans()] == ["e"]
    assert holdings.take_orphans() == []
