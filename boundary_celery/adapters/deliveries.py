"""The one owner of a worker's deliveries: claim, lease, renew, sweep, hand back, ack.

kombu's Redis ack emulation keeps every delivery a consumer took and has not acked as an
*unacked entry*: the JSON ``[message, exchange, routing key]`` in a hash under its
delivery tag, and the start of its lease (epoch seconds) in a sorted set, the *index*.
Boundary keeps that format (kombu and Flower read it) and gives it lease semantics:

- **claim**: ``claim.lua`` takes the most urgent message of a worker's lists and writes
  its entry in the same atomic step (a reply lost on the way loses nothing);
- **record**: the entry of a message taken without the claim (kombu's ``BRPOP``);
- **renew**: a worker's heartbeat restarts the lease of every delivery it holds;
- **sweep**: a delivery whose lease lapsed (its worker stopped renewing) and that this
  process does not hold is handed back;
- **hand back**: in one transaction the entry goes and its message returns to its list;
- **ack**: the entry goes.

:class:`RedisDeliveries` applies these to Redis (alone on a client, or queued on the
caller's pipeline: the transport runs them on kombu's connections);
:class:`MemoryDeliveries` is the same contract in memory. :class:`Holdings` is one
process's side: what it holds, the acks Redis did not take, the messages a connection
error cut short. The kombu overrides in ``shell.transport`` only delegate here.
"""

from __future__ import annotations

import functools
import json
import threading
from bisect import bisect
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis

from boundary_celery.adapters.redis_keys import Keys, list_key, queue_of_list
from boundary_celery.adapters.redis_scripts import ScriptCall, script
from boundary_celery.core.priority import PRIORITY_STEPS

#: ``route(message, exchange, routing_key) -> lists``: where a handed-back message goes.
Route = Callable[[dict[str, Any], str, str], Sequence[str]]
#: ``hook(message) -> ScriptCall | None``: a worker's ``begin`` call for a received
#: message (None: not a job's).
BeginHook = Callable[[Any], "ScriptCall | None"]
#: The attribute that carries a worker's :class:`Holdings`, on the worker and on its
#: consumer's kombu connections.
HOLDINGS_ATTR = "boundary_holdings"


# -- kombu's unacked entry: the Python encoder beside claim.lua's ---------------------


def unacked_entry(message_json: str, exchange: str, routing_key: str) -> str:
    """kombu's unacked entry for a message given as its JSON text: byte for byte what
    kombu's ``dumps([message, exchange, routing_key])`` writes and what ``claim.lua``
    builds as ``'[' .. item .. ', "", ' .. <the queue as JSON> .. ']'``."""
    return f"[{message_json}, {json.dumps(exchange)}, {json.dumps(routing_key)}]"


def claimed_entry_args(lists: Sequence[str]) -> list[str]:
    """``claim.lua``'s half of :func:`unacked_entry`: the routing key of each list's
    entries (its queue, as JSON); the exchange is the anonymous one."""
    return [_routing_key_json(name) for name in lists]


@functools.cache
def _routing_key_json(list_name: str) -> str:
    return json.dumps(queue_of_list(list_name))


def read_entry(entry: bytes | str) -> tuple[dict[str, Any], str, str]:
    """The message, exchange and routing key of an unacked entry."""
    message, exchange, routing_key = json.loads(entry)
    return message, exchange, routing_key


def redelivered(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` marked redelivered, as kombu marks a message it restores."""
    try:
        message["headers"]["redelivered"] = True
        message["properties"]["delivery_info"]["redelivered"] = True
    except (KeyError, TypeError):
        pass
    return message


def default_route(message: dict[str, Any], exchange: str, routing_key: str) -> list[str]:
    """The list a message of the anonymous exchange goes back to: its routing key's queue
    at the level its priority falls in (kombu's ``_q_for_pri`` with Boundary's steps)."""
    priority = int((message.get("properties") or {}).get("priority") or 0)
    step = PRIORITY_STEPS[max(bisect(PRIORITY_STEPS, priority) - 1, 0)]
    return [list_key(routing_key, step)]


@dataclass(frozen=True)
class Claimed:
    """A claimed message: the index of its list in the claim's ``lists``, the message
    as stored, and its delivery tag (None: unreadable, taken without an entry)."""

    index: int
    message: bytes | str
    tag: str | None


def read_claim(reply: Sequence[Any]) -> Claimed | str:
    """``claim.lua``'s reply: the :class:`Claimed`, or the wake id to wait after when
    every list was empty."""
    index = int(reply[0])
    if index == 0:
        return _text(reply[1])
    tag = _text(reply[2]) if len(reply) > 2 and reply[2] is not None else None
    return Claimed(index - 1, reply[1], tag)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- Redis ----------------------------------------------------------------------------


class RedisDeliveries:
    """The unacked entries and leases under one prefix (``Keys``). Each write takes a
    ``pipe`` to queue on (the caller executes it) or runs on ``client`` at once."""

    def __init__(self, keys: Keys, client: Any = None, route: Route = default_route) -> None:
        self.keys = keys
        self.client = client
        self.route = route

    # claim ---------------------------------------------------------------------------

    def claim_call(self, lists: Sequence[str], now_s: float) -> ScriptCall:
        """The ``claim`` call: the next message of ``lists`` (in that order), its entry
        written under a lease starting at ``now_s``; see :func:`read_claim`."""
        k = self.keys
        return ScriptCall(script("claim"), (*lists, k.unacked, k.unacked_index, k.lists_wake),
                          (repr(now_s), len(lists), *claimed_entry_args(lists)))

    def claim(self, lists: Sequence[str], now_s: float) -> Claimed | None:
        """Claim the next message of ``lists`` now (None: every list is empty)."""
        got = read_claim(self.claim_call(lists, now_s).run(self.client))
        return got if isinstance(got, Claimed) else None

    def wait_command(self, after: str, timeout_ms: int) -> tuple[str | int, ...]:
        """The blocking command that returns once a list got a message after the claim
        that answered ``after`` (or after ``timeout_ms``): an ``XREAD`` of the wake
        stream, which takes nothing."""
        return ("XREAD", "COUNT", 1, "BLOCK", timeout_ms, "STREAMS", self.keys.lists_wake,
                after)

    def wake(self, pipe: Any) -> None:
        """Queue the word to idle workers that a list got a message outside the scripts."""
        pipe.xadd(self.keys.lists_wake, {"q": "back"}, maxlen=100, approximate=True)

    # record, renew, ack --------------------------------------------------------------

    def record(self, tag: str, entry: str, now_s: float, pipe: Any = None) -> None:
        """Write ``tag``'s entry under a lease starting at ``now_s``."""
        with self._pipe(pipe) as p:
            p.zadd(self.keys.unacked_index, {tag: now_s})
            p.hset(self.keys.unacked, tag, entry)

    def renew(self, tags: Iterable[str], now_s: float, pipe: Any = None) -> None:
        """Restart the leases of ``tags`` at ``now_s`` (one command; an acked tag stays
        gone)."""
        tags = list(tags)
        if tags:
            with self._pipe(pipe) as p:
                p.zadd(self.keys.unacked_index, dict.fromkeys(tags, now_s), xx=True)

    def ack(self, tag: str, pipe: Any = None) -> None:
        """Remove ``tag``'s entry and lease."""
        with self._pipe(pipe) as p:
            p.zrem(self.keys.unacked_index, tag)
            p.hdel(self.keys.unacked, tag)

    # sweep, hand back ----------------------------------------------------------------

    def lapsed(self, before_s: float, limit: int, held: Container[str] = (),
               client: Any = None) -> list[str]:
        """Up to ``limit`` tags whose lease started before ``before_s``, oldest first,
        leaving out ``held`` (the caller's own: renewal late, not a dead worker)."""
        rows = (client or self.client).zrangebyscore(
            self.keys.unacked_index, "-inf", before_s, start=0, num=limit)
        return [tag for tag in map(_text, rows) if tag not in held]

    def sweep_lock(self, expire_s: float, client: Any = None) -> Any:
        """The sweep's lock (one sweeper at a time across workers), or None when another
        holds it; release it with ``.release()``. It expires after ``expire_s``."""
        lock = (client or self.client).lock(self.keys.unacked_mutex, timeout=expire_s,
                                            blocking=False)
        return lock if lock.acquire() else None

    def hand_back(self, tag: str, leftmost: bool = False, client: Any = None) -> bool:
        """In one transaction (watching the entries): ``tag``'s entry and lease go, its
        message returns, marked redelivered, to its lists: next in line, or last when
        ``leftmost`` (kombu's requeue). False when there was no entry (acked or handed
        back already)."""
        found = False

        def transaction(pipe: Any) -> None:
            nonlocal found
            entry = pipe.hget(self.keys.unacked, tag)
            pipe.multi()
            self.ack(tag, pipe)
            found = entry is not None
            if entry is not None:
                self.push_back(pipe, *read_entry(entry), leftmost=leftmost)

        (client or self.client).transaction(transaction, self.keys.unacked)
        return found

    def push_back(self, pipe: Any, message: dict[str, Any], exchange: str,
                  routing_key: str, leftmost: bool = False) -> None:
        """Queue ``message`` (marked redelivered) onto its lists, and the wake word."""
        body = json.dumps(redelivered(message))
        for target in self.route(message, exchange, routing_key):
            (pipe.lpush if leftmost else pipe.rpush)(target, body)
        self.wake(pipe)

    # reading -------------------------------------------------------------------------

    def entry(self, tag: str) -> str | None:
        raw = self.client.hget(self.keys.unacked, tag)
        return None if raw is None else _text(raw)

    def leases(self) -> dict[str, float]:
        """The start of every lease, by delivery tag."""
        rows = self.client.zrange(self.keys.unacked_index, 0, -1, withscores=True)
        return {_text(tag): score for tag, score in rows}

    @contextmanager
    def _pipe(self, pipe: Any) -> Iterator[Any]:
        """The caller's pipeline (left to the caller to run), or one of our own, run at
        the end of the block."""
        if pipe is not None:
            yield pipe
            return
        own = self.client.pipeline()
        yield own
        own.execute()


# -- memory ---------------------------------------------------------------------------


class MemoryDeliveries:
    """:class:`RedisDeliveries`' contract in memory (lists, entries and leases held
    here): for tests of what the bookkeeping promises, without a Redis."""

    def __init__(self, route: Route = default_route) -> None:
        self.route = route
        self.lists: dict[str, deque[str]] = {}
        self.entries: dict[str, str] = {}
        self.starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def push(self, name: str, message: str) -> None:
        """Publish ``message`` to list ``name`` (kombu's LPUSH: last in line). A list is
        kept as Redis keeps it: the claim takes from the right."""
        self.lists.setdefault(name, deque()).appendleft(message)

    def claim(self, lists: Sequence[str], now_s: float) -> Claimed | None:
        with self._lock:
            for index, name in enumerate(lists):
                items = self.lists.get(name)
                if items:
                    message = items.pop()
                    tag = _tag_of(message)
                    if tag is not None:
                        self.starts[tag] = now_s
                        self.entries[tag] = unacked_entry(message, "", queue_of_list(name))
                    return Claimed(index, message, tag)
        return None

    def record(self, tag: str, entry: str, now_s: float) -> None:
        with self._lock:
            self.starts[tag], self.entries[tag] = now_s, entry

    def renew(self, tags: Iterable[str], now_s: float) -> None:
        with self._lock:
            for tag in tags:
                if tag in self.starts:
                    self.starts[tag] = now_s

    def ack(self, tag: str) -> None:
        with self._lock:
            self.starts.pop(tag, None)
            self.entries.pop(tag, None)

    def lapsed(self, before_s: float, limit: int, held: Container[str] = ()) -> list[str]:
        with self._lock:
            oldest = sorted((start, tag) for tag, start in self.starts.items()
                            if start <= before_s)
        return [tag for _, tag in oldest[:limit] if tag not in held]

    def hand_back(self, tag: str, leftmost: bool = False) -> bool:
        with self._lock:
            self.starts.pop(tag, None)
            entry = self.entries.pop(tag, None)
            if entry is None:
                return False
            message, exchange, routing_key = read_entry(entry)
            body = json.dumps(redelivered(message))
            for target in self.route(message, exchange, routing_key):
                items = self.lists.setdefault(target, deque())
                (items.appendleft if leftmost else items.append)(body)
        return True

    def entry(self, tag: str) -> str | None:
        return self.entries.get(tag)

    def leases(self) -> dict[str, float]:
        return dict(self.starts)


def _tag_of(message: str) -> str | None:
    try:
        tag = json.loads(message)["properties"]["delivery_tag"]
    except (ValueError, KeyError, TypeError):
        return None
    return tag if isinstance(tag, str) else None


# -- one process's side ---------------------------------------------------------------


class TagSet:
    """A thread-safe set of delivery tags (the heartbeat thread reads it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: dict[str, None] = {}

    def add(self, tag: str) -> None:
        with self._lock:
            self._tags[tag] = None

    def discard(self, tag: str) -> None:
        with self._lock:
            self._tags.pop(tag, None)

    def __contains__(self, tag: object) -> bool:
        return tag in self._tags

    def tags(self) -> list[str]:
        """A snapshot."""
        with self._lock:
            return list(self._tags)


class Holdings:
    """One process's deliveries: those it holds (their leases renewed by its heartbeat,
    never swept while held), the acks Redis did not take (done by the next sweep), and
    the messages whose receipt a connection error cut short (handed back by the next
    sweep). ``begin_hook`` is the worker's: the ``begin`` call for a received message."""

    def __init__(self, begin_hook: BeginHook | None = None) -> None:
        self.begin_hook = begin_hook
        self.held = TagSet()
        self.acks_due = TagSet()
        self._orphans: dict[str, Any] = {}
        self._lock = threading.Lock()

    def hold(self, tag: str) -> None:
        self.held.add(tag)

    def release(self, tag: str) -> None:
        """Done with ``tag`` here: acked, handed back, or left to the sweep."""
        self.held.discard(tag)

    def defer_ack(self, tag: str) -> None:
        """An ack Redis did not take: still held (so never swept), acked later."""
        self.held.add(tag)
        self.acks_due.add(tag)

    def orphan(self, tag: str, message: Any) -> None:
        """A message taken whose entry may or may not have been written."""
        with self._lock:
            self._orphans[tag] = message

    def take_orphans(self) -> list[tuple[str, Any]]:
        with self._lock:
            items, self._orphans = list(self._orphans.items()), {}
        return items

    def release_unstarted(self, started: Container[str]) -> int:
        """Stop holding every delivery not in ``started`` (the sweep of any worker then
        delivers it again); returns how many."""
        released = [tag for tag in self.held.tags() if tag not in started]
        for tag in released:
            self.held.discard(tag)
        return len(released)


def holdings_of(connection: Any) -> Holdings:
    """The :class:`Holdings` a kombu connection carries (a worker gives its consumer's
    connections its own), made on first use when it carries none."""
    holdings = getattr(connection, HOLDINGS_ATTR, None)
    if holdings is None:
        holdings = Holdings()
        if connection is not None:
            setattr(connection, HOLDINGS_ATTR, holdings)
    return holdings


def release_lock(lock: Any) -> None:
    """Release the sweep's lock; one that expired meanwhile is someone else's now."""
    with suppress(redis.exceptions.LockError):
        lock.release()
