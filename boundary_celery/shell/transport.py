"""A kombu Redis transport that knows about Boundary jobs.

Installed as Celery's ``broker_transport`` (the ``redis://`` URL is kept, so Flower and
other tools read the broker as usual). Compared with kombu's Redis transport it:

- writes the job record in the same atomic round trip as the message (``enqueue.lua``),
  when the publisher attached record fields to the message;
- sends a message that carries a due time to the scheduled sorted set instead of the
  list (delayed jobs and retry backoff never become Celery ETA messages);
- reads the priority lists of every consumed queue most urgent level first (strict
  priority across queues, whatever kombu's own key order);
- dead-letters a broker message it cannot parse instead of raising in the consumer loop
  (the message would otherwise be lost after BRPOP removed it);
- reuses one redis client per channel for publishes and acks (kombu 5.7 builds a new
  ``redis.Redis`` around the same pool on every call, which costs the consumer time);
- in a worker, runs the job's ``begin`` script inside the MULTI/EXEC that records the
  message as unacked, and hands the verdict to the pool in a header: marking a job
  running costs no round trip of its own;
- holds every delivery under a lease instead of a visibility timeout: the process keeps
  the tags it holds (:data:`HELD`), its heartbeat renews them all in one command, and the
  sweep delivers again only what a dead worker held (lease older than ``lease_s``), never
  a job because it runs long. kombu's sweep is replaced by that lease sweep (same keys,
  same mutex, same atomic restore), not kept beside it. At a channel close the worker
  hands back what it holds only when it is shutting down, and only what has not started;
  on a reconnect it keeps everything (its pool still runs what it was given).

The store builds every script call (``RedisJobStore.enqueue_call``, ``begin_call``,
``dead_letter``); this module only runs them on kombu's client or pipeline.
"""

# kombu/celery internals used here are untyped attributes of their classes.
# mypy: disable-error-code="attr-defined"
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

from boundary_celery.adapters.redis_store import RedisJobStore, ScriptCall
from boundary_celery.shell import wire
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.poison import poison_job

log = logging.getLogger("boundary_celery.worker")

#: ``hook(message) -> ScriptCall | None``: the ``begin`` call for a received message,
#: installed by the worker bootstep (None: not a worker, or not a job).
BeginHook = Callable[[Any], "ScriptCall | None"]


class Held:
    """The delivery tags this process holds (received, not yet acked or handed back),
    whatever channel received them; thread-safe (the heartbeat thread reads them)."""

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
        """A snapshot, for the heartbeat's lease renewal."""
        with self._lock:
            return list(self._tags)


#: This process's held deliveries (see :class:`Held`).
HELD = Held()


def _shutting_down() -> bool:
    """True once the worker was asked to stop (warm or cold), not on a reconnect."""
    from celery.worker import state

    return state.should_stop is not None or state.should_terminate is not None


def _started_tags() -> set[str]:
    """Delivery tags of the requests the pool has started (Celery's active requests)."""
    from celery.worker import state

    tags = set()
    for request in tuple(state.active_requests):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag is not None:
            tags.add(str(tag))
    return tags


class QoS(kombu_redis.QoS):
    """kombu's Redis ack emulation, with the job's ``begin`` in the same transaction and
    leases instead of a visibility timeout (kombu's ``visibility_timeout`` is the lease)."""

    begin_hook: BeginHook | None = None

    def append(self, message: Any, delivery_tag: str) -> None:
        HELD.add(str(delivery_tag))
        hook = QoS.begin_hook
        call = hook(message) if hook is not None else None
        if call is None:
            return super().append(message, delivery_tag)
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: kombu_redis.time()})
            pipe.hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            call.queue(pipe)
            verdict: str | None
            try:
                verdict = bytes_to_str(pipe.execute()[2])
            except redis.exceptions.NoScriptError:  # the rest of the transaction ran
                with self.channel.conn_or_acquire() as client:
                    verdict = bytes_to_str(call.run(client))
            except redis.exceptions.ResponseError:  # unacked bookkeeping ran; the pool
                verdict = None  # child runs begin itself and reports any error there
        if verdict is not None:
            # After the unacked copy was serialized: a redelivery never carries a verdict.
            message.headers[wire.VERDICT] = verdict
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        HELD.discard(bytes_to_str(delivery_tag))  # acked, rejected or handed back
        return super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """The lease sweep (kombu calls it every ``unacked_restore_interval``): deliver
        again each delivery whose lease lapsed (its worker stopped renewing it), oldest
        first, at most ``num`` per call. Never one this process holds."""
        ceil = time.time() - self.visibility_timeout
        with self.channel.conn_or_acquire() as client:
            try:
                with kombu_redis.Mutex(client, self.unacked_mutex_key,
                                       self.unacked_mutex_expire):
                    lapsed = client.zrangebyscore(self.unacked_index_key, "-inf", ceil,
                                                  start=0, num=num or 100)
                    for raw_tag in lapsed:
                        tag = bytes_to_str(raw_tag)
                        if tag in HELD:  # ours: renewal late (an outage), not a dead worker
                            continue
                        self.restore_by_tag(tag, client)
                        log.warning(event("Lease lapsed; delivered again", delivery_tag=tag))
            except kombu_redis.MutexHeld:
                pass

    def restore_unacked(self, client: Any = None) -> None:
        """At a channel close: during a shutdown, hand back at once what the pool has not
        started; on a reconnect hand back nothing (the pool still runs what it holds and
        acks it later; the leases cover a crash)."""
        if not _shutting_down():
            return
        started = _started_tags()
        delivered: dict[Any, Any] = self._delivered or {}
        with self.channel.conn_or_acquire(client) as conn:
            for tag in list(delivered):
                if str(tag) not in started:
                    self.restore_by_tag(tag, client=conn)
        delivered.clear()


class Channel(kombu_redis.Channel):
    """kombu Redis channel with Boundary's publish, consume and poison handling."""

    QoS = QoS

    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "boundary_prefix",
        "boundary_dlq_max_size",
        "boundary_dlq_max_age_days",
    )
    boundary_prefix = "boundary"
    boundary_dlq_max_size = 10_000
    boundary_dlq_max_age_days = 180

    _boundary_client: Any = None

    @cached_property
    def boundary_store(self) -> RedisJobStore:
        """The job store, used here only with this channel's client."""
        return RedisJobStore(prefix=self.boundary_prefix,
                             dlq_max_size=self.boundary_dlq_max_size,
                             dlq_max_age_days=self.boundary_dlq_max_age_days)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu's pooled client, kept for the life of its pool (a fork or a reconnect
        gives kombu a new pool, and so a new client here)."""
        if client:
            yield client
            return
        pool = self.pool
        cached = self._boundary_client
        if cached is None or cached.connection_pool is not pool:
            cached = self._boundary_client = self._create_client()
        yield cached

    # -- publishing -----------------------------------------------------------------

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        headers = message.get("headers") or {}
        if wire.WRITE not in headers and wire.DUE not in headers:
            return super()._put(queue, message, **kwargs)
        message = dict(message)
        message["headers"] = {k: v for k, v in headers.items() if k not in wire.TRANSIENT}
        target = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        call = self.boundary_store.enqueue_call(
            queue, target, dumps(message), str(headers.get("id")),
            due_ms=headers.get(wire.DUE), write=headers.get(wire.WRITE),
        )
        batch = kwargs.pop("_publish_batch", None)
        with self.conn_or_acquire() as client:
            if batch is None:
                call.run(client)
                return None
            if not getattr(self, "_boundary_scripts_loaded", False):
                call.load(client)  # the batch pipeline sends EVALSHA only
                self._boundary_scripts_loaded = True
        batch.add("execute_command", *call.command())
        return None

    # -- consuming ------------------------------------------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        if timeout is None:  # kombu >= 5.6 passes None and keeps its own default
            timeout = getattr(self, "brpop_timeout", 1)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        # Level-major order: every queue's critical list before any high list.
        keys = [self._q_for_pri(q, step) for step in self.priority_steps for q in queues]
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # read by kombu >= 5.6 only
        self.client.connection.send_command("BRPOP", *keys, timeout or 0)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(
                    self.client.connection, "BRPOP", **options
                )
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise kombu_redis.Empty()
            dest_raw, item = dest__item
            dest = bytes_to_str(dest_raw).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = self._parse_envelope(bytes_to_str(item), dest)
            if payload is not None:
                self.connection._deliver(payload, dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _parse_envelope(self, raw: str, queue: str) -> dict[str, Any] | None:
        """The broker message, or None after dead-lettering one that cannot be read."""
        try:
            payload = loads(raw)
            if not isinstance(payload, dict):
                raise ValueError("message is not a JSON object")
            props = payload["properties"]
            if not isinstance(props, dict) or "delivery_tag" not in props:
                raise ValueError("message has no properties.delivery_tag")
            if not isinstance(payload.get("headers") or {}, dict):
                raise ValueError("message headers are not an object")
            body = payload.get("body")
            if body:
                self.decode_body(body, props.get("body_encoding"))
        except Exception as exc:
            reason = f"undecodable broker message: {exc}"
            job = poison_job(job_id=None, job_type=None, queue=queue, reason=reason,
                             error_type="PoisonMessageError", now=utcnow(), raw=raw)
            with self.conn_or_acquire() as client:
                self.boundary_store.dead_letter(job, count=True, client=client)
            log.error(event("Poison message dead-lettered", job_id=str(job.id), queue=queue,
                            reason=reason))
            return None
        return payload


class Transport(kombu_redis.Transport):
    """kombu Redis transport using :class:`Channel`."""

    Channel = Channel
