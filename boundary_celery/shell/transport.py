"""A kombu Redis transport that knows about Boundary jobs.

Installed as Celery's ``broker_transport`` (the ``redis://`` URL is kept, so Flower and
other tools read the broker as usual). Compared with kombu's Redis transport it:

- writes the job record in the same atomic round trip as the message (``enqueue.lua``),
  when the publisher attached record fields to the message;
- sends a message that carries a due time to the scheduled sorted set instead of the
  list (delayed jobs and retry backoff never become Celery ETA messages);
- reads the priority lists of every consumed queue most urgent level first (strict
  priority across queues, whatever kombu's own key order);
- claims instead of popping: a worker's channel takes a message with ``claim.lua``,
  which records it unacked under a fresh lease in the same atomic step, so a reply lost
  on the way (Redis killed after the write, a dropped connection) loses nothing; with
  every list empty it blocks on the lists' wake stream (``XREAD``, which takes nothing)
  until a list gets a message, at most ``brpop_timeout`` s, then claims again. A
  channel that also reads queues without acks (replies) keeps kombu's ``BRPOP``;
- dead-letters a broker message it cannot parse instead of raising in the consumer loop
  (the message would otherwise be lost after BRPOP removed it);
- reuses one redis client per channel for publishes and acks (kombu 5.7 builds a new
  ``redis.Redis`` around the same pool on every call, which costs the consumer time);
- in a worker, runs the job's ``begin`` script inside the MULTI/EXEC that records the
  message as unacked, and hands the verdict to the pool in a header: marking a job
  running costs no round trip of its own;
- holds every delivery under a lease instead of a visibility timeout: the process keeps
  the tags it holds (its ``Holdings``), its heartbeat renews them all in one command, and
  the sweep delivers again only what a dead worker held (lease older than ``lease_s``),
  never a job because it runs long. kombu's sweep is replaced by that lease sweep, not
  kept beside it. At a channel close (shutdown or reconnect) the worker hands back at
  once what its pool has not started, and keeps what it runs. The bookkeeping itself
  (claim, record, renew, sweep, hand back, ack) is ``adapters.deliveries``'; the kombu
  overrides here only delegate to it;
- with ``[redis] wait_replicas``, returns from a publish only once that many replicas
  have the job (``WAIT``), so a failover cannot lose an acknowledged enqueue.

:class:`SentinelTransport` is the same on a ``sentinel://`` URL (kombu's Sentinel
channel finds the master, and the new one after a failover).

The store and the deliveries' owner build every script call (``enqueue_call``,
``begin_call``, ``dead_letter``, ``claim_call``); this module only runs them on kombu's
client or pipeline.
"""

# kombu/celery internals used here are untyped attributes of their classes.
# mypy: disable-error-code="attr-defined"
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps
from kombu.utils.objects import cached_property

from boundary_celery.adapters.deliveries import (
    Claimed,
    Holdings,
    RedisDeliveries,
    holdings_of,
    read_claim,
    release_lock,
    unacked_entry,
)
from boundary_celery.adapters.redis_store import RedisJobStore, ScriptCall
from boundary_celery.core import JobStatus, valid_transition
from boundary_celery.core.errors import NotReplicatedError
from boundary_celery.shell import wire
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.envelope import (
    EnvelopeError,
    claimed_job,
    is_connection_error,
    read_envelope,
)
from boundary_celery.shell.logfmt import event
from boundary_celery.shell.poison import poison_job

log = logging.getLogger("boundary_celery.worker")

def started_tags() -> set[str]:
    """Delivery tags of the requests the pool has started (Celery's active requests)."""
    from celery.worker import state

    tags = set()
    for request in tuple(state.active_requests):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag is not None:
            tags.add(str(tag))
    return tags


#: Fetch kinds besides kombu's "BRPOP" (see ``Channel._fetch``).
CLAIM, WAIT = "boundary.claim", "boundary.wait"


class QoS(kombu_redis.QoS):
    """kombu's Redis ack emulation, with the job's ``begin`` in the same transaction and
    leases instead of a visibility timeout (kombu's ``visibility_timeout`` is the lease).
    The bookkeeping is the channel's ``deliveries``; what this process holds, its
    ``holdings`` (both in ``adapters.deliveries``)."""

    @property
    def deliveries(self) -> RedisDeliveries:
        return self.channel.deliveries

    @property
    def holdings(self) -> Holdings:
        return self.channel.holdings

    def append(self, message: Any, delivery_tag: str) -> None:
        tag = str(delivery_tag)
        holdings = self.holdings
        holdings.hold(tag)
        try:
            self._append(message, tag)
        except Exception as exc:
            holdings.release(tag)
            if is_connection_error(exc, self.channel.connection_errors):
                # The message was taken; its entry may or may not have been written.
                # Handed back once Redis answers again (``_return_orphans``).
                holdings.orphan(tag, message)
            raise

    def _append(self, message: Any, tag: str) -> None:
        hook = self.holdings.begin_hook
        call = hook(message) if hook is not None else None
        claimed = self.channel._claimed_tag == tag  # the claim wrote the entry
        verdict: str | None = None
        if call is None:
            if not claimed:
                with self.pipe_or_acquire() as pipe:
                    self._record(pipe, message, tag)
                    pipe.execute()
        elif claimed:
            verdict = self._begin(call)
        else:
            verdict = self._record_and_begin(message, tag, call)
        if hook is not None:  # a worker: the pool child's begin reads the tag
            # After the entry was serialized: a redelivery never carries these.
            message.headers[wire.TAG] = tag
        if verdict is not None:
            message.headers[wire.VERDICT] = verdict
            message.headers[wire.RECEIVED] = int(time.time() * 1000)
        virtual.QoS.append(self, message, tag)

    def _record(self, pipe: Any, message: Any, tag: str) -> None:
        """Queue the entry of a message taken without the claim (kombu's BRPOP)."""
        delivery = message.delivery_info
        entry = unacked_entry(dumps(message._raw), delivery["exchange"],
                              delivery["routing_key"])
        self.deliveries.record(tag, entry, kombu_redis.time(), pipe)

    def _begin(self, call: ScriptCall) -> str | None:
        """Run ``begin`` alone (the claim recorded the delivery); None when it failed
        with an error reply (the pool child runs it again and reports the error)."""
        with self.channel.conn_or_acquire() as client:
            try:
                return bytes_to_str(call.run(client))
            except redis.exceptions.ResponseError:
                return None

    def _record_and_begin(self, message: Any, tag: str, call: ScriptCall) -> str | None:
        """The entry and ``begin`` in one MULTI/EXEC (a message that was popped, not
        claimed); the verdict, or None as in :meth:`_begin`."""
        with self.pipe_or_acquire() as pipe:
            self._record(pipe, message, tag)
            call.queue(pipe)
            verdict: str | None
            try:
                verdict = bytes_to_str(pipe.execute()[-1])
            except redis.exceptions.NoScriptError:  # the rest of the transaction ran
                with self.channel.conn_or_acquire() as client:
                    verdict = bytes_to_str(call.run(client))
            except redis.exceptions.ResponseError:  # the entry was written; the pool
                verdict = None  # child runs begin itself and reports any error there
        return verdict

    def ack(self, delivery_tag: Any) -> None:
        """kombu's ack; when Redis cannot take it (a restart), the delivery stays held
        (its lease renewed, so never delivered again) and the next sweep acks it: a
        warning instead of Celery's CRITICAL traceback and a redelivery."""
        try:
            super().ack(delivery_tag)
        except Exception as exc:
            if not is_connection_error(exc, self.channel.connection_errors):
                raise
            tag = bytes_to_str(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)  # done with, for this channel
            self.holdings.defer_ack(tag)
            log.warning(event("Ack deferred until Redis answers", delivery_tag=tag,
                              error=repr(exc)))

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        """kombu's bookkeeping of an ack, a reject or a hand-back: the entry goes, on
        ``pipe`` (returned, for the caller to run)."""
        tag = bytes_to_str(delivery_tag)
        self.holdings.release(tag)
        with self.pipe_or_acquire(pipe) as p:
            self.deliveries.ack(tag, p)
            return p

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """Hand the delivery back (``RedisDeliveries.hand_back``)."""
        tag = bytes_to_str(tag)
        self.holdings.release(tag)
        with self.channel.conn_or_acquire(client) as conn:
            self.deliveries.hand_back(tag, leftmost, client=conn)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """The lease sweep (kombu calls it every ``unacked_restore_interval``): first the
        acks and hand-backs a lost connection left due, then each delivery whose lease
        lapsed (its worker stopped renewing it), oldest first, at most ``num`` per call;
        never one this process holds (a late renewal, not a dead worker)."""
        deliveries, held = self.deliveries, self.holdings.held
        before = time.time() - self.visibility_timeout
        with self.channel.conn_or_acquire() as client:
            self._ack_deferred(client)
            self._return_orphans(client)
            lock = deliveries.sweep_lock(self.unacked_mutex_expire, client)
            if lock is None:  # another worker sweeps now
                return
            try:
                for tag in deliveries.lapsed(before, num or 100, held, client):
                    deliveries.hand_back(tag, client=client)
                    log.warning(event("Lease lapsed; delivered again", delivery_tag=tag))
            finally:
                release_lock(lock)

    def _ack_deferred(self, client: Any) -> None:
        """Ack what Redis could not take before (see :meth:`ack`)."""
        holdings = self.holdings
        for tag in holdings.acks_due.tags():
            self._remove_from_indices(tag, client.pipeline()).execute()
            holdings.acks_due.discard(tag)

    def _return_orphans(self, client: Any) -> None:
        """Hand back the messages whose receipt a connection error cut short: by their
        entry when it was written, else by pushing the message back."""
        holdings = self.holdings
        orphans = holdings.take_orphans()
        for done, (tag, message) in enumerate(orphans):
            try:
                if not self.deliveries.hand_back(tag, client=client):
                    info = message.delivery_info
                    pipe = client.pipeline()
                    self.deliveries.push_back(pipe, message._raw, info["exchange"],
                                              info["routing_key"])
                    pipe.execute()
            except Exception:
                for left_tag, left in orphans[done:]:  # this one and the rest: next sweep
                    holdings.orphan(left_tag, left)
                raise
            log.warning(event("Message handed back after a connection error",
                              delivery_tag=tag))

    def restore_unacked(self, client: Any = None) -> None:
        """At a channel close (a shutdown or a reconnect), hand back what the pool has
        not started: Celery drops those requests then. What it started stays held (the
        pool finishes it and acks it later). If Redis is unreachable now, the deliveries
        handed back are released from this worker's leases instead, so the sweep of any
        worker returns them within a lease."""
        started = started_tags()
        delivered: dict[Any, Any] = self._delivered or {}
        returned = [str(tag) for tag in list(delivered) if str(tag) not in started]
        for tag in returned:
            self.holdings.release(tag)
        try:
            with self.channel.conn_or_acquire(client) as conn:
                for tag in returned:
                    self.deliveries.hand_back(tag, client=conn)
        except Exception as exc:  # Redis down, or the channel already torn down
            log.warning(event("Could not hand back deliveries now; their leases will lapse",
                              count=len(returned), error=repr(exc)))
        delivered.clear()


class Channel(kombu_redis.Channel):
    """kombu Redis channel with Boundary's publish, consume and poison handling."""

    QoS = QoS

    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "boundary_prefix",
        "boundary_dlq_max_size",
        "boundary_dlq_max_age_days",
        "boundary_wait_replicas",
        "boundary_wait_timeout_ms",
        "boundary_max_message_bytes",
    )
    boundary_prefix = "boundary"
    boundary_dlq_max_size = 10_000
    boundary_dlq_max_age_days = 180
    #: ``[redis] wait_replicas`` / ``wait_timeout_ms``: an enqueue returns once this many
    #: replicas have the job (0: at once).
    boundary_wait_replicas = 0
    boundary_wait_timeout_ms = 1000
    #: ``[store] max_message_bytes`` (the setting's default): the most bytes a task
    #: message's body may decode to; a bigger one is dead-lettered, never inflated.
    boundary_max_message_bytes = 8_388_608

    _boundary_client: Any = None
    #: The delivery tag of the message being delivered now when the claim wrote its
    #: entry (set around the consumer callback; read by ``QoS.append``).
    _claimed_tag: str | None = None
    #: Queues consumed with acks (see :meth:`basic_consume`).
    _boundary_acked: set[str] | None = None

    @cached_property
    def boundary_store(self) -> RedisJobStore:
        """The job store, used here only with this channel's client."""
        return RedisJobStore(prefix=self.boundary_prefix,
                             dlq_max_size=self.boundary_dlq_max_size,
                             dlq_max_age_days=self.boundary_dlq_max_age_days)

    @cached_property
    def deliveries(self) -> RedisDeliveries:
        """The unacked entries and leases, run on this channel's connections."""
        return RedisDeliveries(self.boundary_store.keys, route=self._route_back)

    @cached_property
    def holdings(self) -> Holdings:
        """What this process holds: the worker's (given to its consumer's connection),
        else this connection's own."""
        return holdings_of(self.connection.client)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu's pooled client, kept for the life of its pool (a fork or a reconnect
        gives kombu a new pool, and so a new client here); after the channel closed, the
        last one (for late acks)."""
        if client:
            yield client
            return
        closed = self.connection is None or getattr(self.connection, "client", None) is None
        if closed and self._boundary_client is not None:
            # Closed on a reconnect: the acks of jobs the pool ran meanwhile still come
            # here; the client's pool reconnects on use.
            yield self._boundary_client
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
            token=str(headers.get(wire.PUBLISH) or ""),
        )
        batch = kwargs.pop("_publish_batch", None)
        with self.conn_or_acquire() as client:
            if batch is None:
                call.run(client)
                self.await_replicas(client, [str(headers.get("id"))])
                return None
            if not getattr(self, "_boundary_scripts_loaded", False):
                call.load(client)  # the batch pipeline sends EVALSHA only
                self._boundary_scripts_loaded = True
        batch.add("execute_command", *call.command())
        return None

    def await_replicas(self, client: Any, job_ids: list[str]) -> None:
        """With ``boundary_wait_replicas``, return once that many replicas have what was
        published (``job_ids``); NotReplicatedError when they do not within
        ``boundary_wait_timeout_ms``. A batch calls it once, after its last flush."""
        wanted = int(self.boundary_wait_replicas or 0)
        if wanted <= 0:
            return
        timeout_ms = int(self.boundary_wait_timeout_ms)
        acknowledged = self.boundary_store.await_replicas(client, wanted, timeout_ms)
        if acknowledged < wanted:
            raise NotReplicatedError(job_ids, wanted, acknowledged, timeout_ms)

    # -- consuming ------------------------------------------------------------------

    #: The fetch in flight on the BRPOP connection: ``BRPOP`` (kombu's pop), ``CLAIM``
    #: (``claim.lua``) or ``WAIT`` (blocking on the wake stream); read by _brpop_read.
    #: Also the name its reply is parsed under: none but BRPOP is a Redis command name,
    #: so redis-py applies no reply callback to the others.
    _fetch: str = "BRPOP"
    _fetch_lists: list[str] | None = None

    def _claims(self) -> bool:
        """True if every queue this channel reads is consumed with acks (a worker's task
        channel): its messages are claimed, not popped."""
        acked = self._boundary_acked
        if not acked:
            return False
        return all(q in acked for q in self.active_queues)

    def _lists(self) -> list[str]:
        """The lists to read, level-major: every queue's critical list before any high
        list (kombu's queue cycle decides the order of queues within a level)."""
        queues = self._queue_cycle.consume(len(self.active_queues))
        return [self._q_for_pri(q, step) for step in self.priority_steps for q in queues]

    def _send_fetch(self, kind: str, after: str = "$", timeout: float | None = None) -> bool:
        """Send ``kind`` on the BRPOP connection (``WAIT``: for a list message after the
        wake id ``after``; BRPOP and WAIT block at most ``timeout`` s, kombu's
        ``brpop_timeout`` by default); kombu's poller reads the reply with
        :meth:`_brpop_read`. False when there is nothing to read (no queue consumed)."""
        lists = self._lists() if kind != WAIT else self._fetch_lists or []
        if not lists:
            return False
        timeout = timeout or getattr(self, "brpop_timeout", 1) or 1
        connection = self.client.connection
        if kind == "BRPOP":
            command: tuple[Any, ...] = ("BRPOP", *lists, timeout)
        elif kind == CLAIM:
            command = self.deliveries.claim_call(lists, kombu_redis.time()).command()
        else:
            command = self.deliveries.wait_command(after, max(int(timeout * 1000), 100))
        self._fetch, self._fetch_lists = kind, lists
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()  # read by kombu >= 5.7 only
        connection.send_command(*command)
        return True

    def _brpop_start(self, timeout: float | None = None) -> None:
        self._send_fetch(CLAIM if self._claims() else "BRPOP", timeout=timeout)

    def _brpop_read(self, **options: Any) -> bool:
        kind = self._fetch
        then: tuple[str, str] | None = None  # the fetch to send next, on this connection
        try:
            try:
                reply = self.client.parse_response(self.client.connection, kind, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.exceptions.NoScriptError:  # a restarted Redis: no scripts yet
                with self.conn_or_acquire() as client:
                    self.deliveries.claim_call([], 0.0).load(client)
                then = (CLAIM, "")
                raise kombu_redis.Empty() from None
            except redis.exceptions.ResponseError as exc:  # refused (e.g. out of memory):
                log.warning(event("Claim refused; waiting", error=str(exc)))  # nothing taken
                then = (WAIT, "$")
                raise kombu_redis.Empty() from None
            if kind == WAIT:  # a list got a message, or the wait timed out
                then = (CLAIM, "")
                raise kombu_redis.Empty()
            if kind == "BRPOP":
                if not reply:
                    raise kombu_redis.Empty()
                return self._deliver_fetched(reply[0], reply[1], None)
            claimed = read_claim(reply)
            if not isinstance(claimed, Claimed):  # every list empty: wait for a message
                then = (WAIT, claimed)
                raise kombu_redis.Empty()
            return self._deliver_fetched((self._fetch_lists or [])[claimed.index],
                                         claimed.message, claimed.tag)
        finally:
            sent = (then is not None and not getattr(self, "_closing", False)
                    and self.qos.can_consume() and self._send_fetch(*then))
            if not sent:
                self._in_poll = None
                flush = getattr(self, "_flush_brpop_reauth", None)
                if flush is not None:
                    flush()

    def _deliver_fetched(self, dest_raw: bytes | str, item: bytes | str, tag: str | None) -> bool:
        """Deliver one fetched message of list ``dest_raw``; ``tag`` is its delivery tag
        when the claim recorded it unacked (taken back on every path that does not
        deliver it)."""
        dest = bytes_to_str(dest_raw).rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(dest)
        if dest not in (self.connection._callbacks or {}):
            # Taken while its consumer is being set up again (a reconnect): kombu
            # would requeue it through a channel, or drop it when none is left.
            # Back to the front of its own list, untouched.
            with self.conn_or_acquire() as client, client.pipeline() as pipe:
                pipe.rpush(dest_raw, item)
                if tag is not None:
                    self.qos._remove_from_indices(tag, pipe)
                self.deliveries.wake(pipe)
                pipe.execute()
            log.warning(event("Message returned: no consumer for its queue yet", queue=dest))
            return True
        payload = self._parse_envelope(item, dest)
        if payload is not None and tag is not None \
                and payload["properties"].get("delivery_tag") != tag:
            # The claim read the tag off the message's end; a message whose real tag
            # differs is recorded again under its own (QoS.append), this entry dropped.
            self.qos._remove_from_indices(tag).execute()
            tag = None
        if payload is None:  # dead-lettered
            if tag is not None:
                self.qos._remove_from_indices(tag).execute()
        elif self._task_queue(dest):
            self._claimed_tag = tag
            try:
                self._deliver_or_dead_letter(payload, item, dest)
            finally:
                self._claimed_tag = None
        else:  # a reply or a result: its reader's errors are its own
            self.connection._deliver(payload, dest)
        return True

    def _do_restore_message(self, payload: Any, exchange: str, routing_key: str,
                            pipe: Any, leftmost: bool = False) -> None:
        """kombu's (the message back on its lists, redelivered), by the deliveries'
        owner, with the word to idle workers."""
        self.deliveries.push_back(pipe, payload, exchange, routing_key, leftmost)

    def _route_back(self, message: dict[str, Any], exchange: str,
                    routing_key: str) -> Sequence[str]:
        """The lists a handed-back message returns to: kombu's routing (``_lookup``) at
        the level of its priority."""
        step = self._get_message_priority(message, reverse=False)
        return [self._q_for_pri(queue, step) for queue in self._lookup(exchange, routing_key)]

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        """kombu's; notes the queues consumed with acks: their messages are the task
        messages a worker runs (replies and results are read without acks)."""
        if self._boundary_acked is None:
            self._boundary_acked = set()
        (self._boundary_acked.discard if no_ack else self._boundary_acked.add)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _task_queue(self, queue: str) -> bool:
        """True if ``queue``'s messages are task messages (consumed with acks)."""
        return self._boundary_acked is not None and queue in self._boundary_acked

    def _parse_envelope(self, raw: bytes | str, queue: str) -> dict[str, Any] | None:
        """The broker message, or None after dead-lettering one that cannot be delivered:
        of a task message every field a worker reads on receipt is checked first, of any
        other what kombu reads (``envelope.read_envelope``); a task message's body is
        decoded at most ``boundary_max_message_bytes`` far."""
        try:
            return read_envelope(raw, task_message=self._task_queue(queue),
                                 max_body_bytes=int(self.boundary_max_message_bytes))
        except EnvelopeError as exc:
            reason = f"undeliverable broker message: {exc}"
        except Exception as exc:  # a bug in the checks: still never raised in the loop
            reason = f"undeliverable broker message (checking it failed): {exc!r}"
        self._dead_letter_raw(raw, queue, reason)
        return None

    def _deliver_or_dead_letter(self, payload: dict[str, Any], raw: bytes | str,
                                queue: str) -> None:
        """Hand a checked message to kombu's consumer callback (kombu's message, the
        unacked record and ``begin`` in ``QoS.append``, then Celery's strategy). Whatever
        else is raised for this one message dead-letters it, out of the unacked hash,
        instead of stopping the worker (which would lose it); a failed connection is
        still raised, for kombu to reconnect."""
        try:
            self.connection._deliver(payload, queue)
        except Exception as exc:
            if is_connection_error(exc, self.connection_errors):
                raise
            log.exception(event("Delivering a message failed", queue=queue))
            self._dead_letter_raw(raw, queue, f"delivering the message failed: {exc!r}")
            tag = payload["properties"]["delivery_tag"]
            held = (self.qos._delivered or {}).get(tag)
            if held is None:  # a partial QoS.append: drop whatever it recorded
                self.qos._remove_from_indices(tag).execute()
            elif getattr(held, "_raw", None) is payload:
                self.qos.ack(tag)
            # else: another delivery in flight has the same tag; it is left alone

    def _dead_letter_raw(self, raw: bytes | str, queue: str, reason: str) -> None:
        """Dead-letter a broker message as received (kept, truncated, for inspection),
        under the job id it carries when that job's record can still fail (its fields
        are replaced by the DLQ entry's; only the status is read: its args may be big)."""
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
        job_id, job_type = claimed_job(raw)
        with self.conn_or_acquire() as client:
            try:  # the record its producer wrote becomes the DLQ entry (none left pending)
                status = self.boundary_store.status_of(job_id, client) if job_id else None
            except ValueError:  # not a status: a new entry
                status, job_id = None, None
            if status is not None and not valid_transition(status, JobStatus.FAILED):
                job_id = None  # never rewrite a finished job's record
            job = poison_job(job_id=job_id, job_type=job_type, queue=queue, reason=reason,
                             error_type="PoisonMessageError", now=utcnow(), raw=text)
            self.boundary_store.dead_letter(job, count=True, client=client)
        log.warning(event("Poison message dead-lettered", job_id=str(job.id), queue=queue,
                          reason=reason))


class Transport(kombu_redis.Transport):
    """kombu Redis transport using :class:`Channel`."""

    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """:class:`Channel` on the master a Redis Sentinel group names: kombu's
    ``SentinelChannel`` finds it (``master_name`` transport option) and finds the new one
    after a failover, when the consumer reconnects."""

    from_transport_options = (
        *Channel.from_transport_options,
        *(name for name in kombu_redis.SentinelChannel.from_transport_options
          if name not in Channel.from_transport_options),
    )


class SentinelTransport(Transport):
    """:class:`Transport` for ``sentinel://`` broker URLs."""

    Channel = SentinelChannel
    default_port = 26379
