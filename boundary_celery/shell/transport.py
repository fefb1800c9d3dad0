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
  running costs no round trip of its own.
"""

# kombu/celery internals used here are untyped attributes of their classes.
# mypy: disable-error-code="attr-defined"
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

from boundary_celery.adapters.redis_keys import PRIORITY_STEPS, Keys, queue_of_list
from boundary_celery.adapters.redis_store import enqueue_args, enqueue_keys, script
from boundary_celery.shell import headers as H
from boundary_celery.shell.poison import dead_letter_poison

#: ``hook(message) -> (keys, argv) | None``: the ``begin.lua`` call for a received
#: message, installed by the worker bootstep (None: not a worker, or not a job).
BeginHook = Callable[[Any], "tuple[list[str], list[Any]] | None"]


class QoS(kombu_redis.QoS):
    """kombu's Redis ack emulation, with the job's ``begin`` in the same transaction."""

    begin_hook: BeginHook | None = None

    def append(self, message: Any, delivery_tag: str) -> None:
        hook = QoS.begin_hook
        call = hook(message) if hook is not None else None
        if call is None:
            return super().append(message, delivery_tag)
        keys, argv = call
        begin = script("begin")
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: kombu_redis.time()})
            pipe.hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            pipe.evalsha(begin.sha, len(keys), *keys, *argv)
            verdict: str | None
            try:
                verdict = bytes_to_str(pipe.execute()[2])
            except redis.exceptions.NoScriptError:  # the rest of the transaction ran
                with self.channel.conn_or_acquire() as client:
                    verdict = bytes_to_str(begin(client, keys, argv))
            except redis.exceptions.ResponseError:  # unacked bookkeeping ran; the pool
                verdict = None  # child runs begin itself and reports any error there
        if verdict is not None:
            # After the unacked copy was serialized: a redelivery never carries a verdict.
            message.headers[H.VERDICT] = verdict
        virtual.QoS.append(self, message, delivery_tag)


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
    priority_steps = list(PRIORITY_STEPS)

    _boundary_client: Any = None

    @cached_property
    def boundary_keys(self) -> Keys:
        return Keys(self.boundary_prefix)

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
        if H.RECORD not in headers and H.DUE not in headers:
            return super()._put(queue, message, **kwargs)
        message = dict(message)
        message["headers"] = {k: v for k, v in headers.items() if k not in H.TRANSIENT}
        job_id = str(headers.get("id"))
        target = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        keys = enqueue_keys(self.boundary_keys, target, job_id, queue)
        args = enqueue_args(
            dumps(message),
            job_id,
            queue,
            due_ms=headers.get(H.DUE),
            counter=headers.get(H.COUNTER) or "",
            delete=headers.get(H.CLEAR) or (),
            fields=headers.get(H.RECORD) or (),
        )
        batch = kwargs.pop("_publish_batch", None)
        enqueue = script("enqueue")
        if batch is not None:
            self._ensure_scripts_loaded(batch.pipeline)
            batch.add("evalsha", enqueue.sha, len(keys), *keys, *args)
            return None
        with self.conn_or_acquire() as client:
            enqueue(client, keys, args)
        return None

    def _ensure_scripts_loaded(self, pipeline: Any) -> None:
        if getattr(self, "_boundary_scripts_loaded", False):
            return
        with self.conn_or_acquire() as client:
            client.script_load(script("enqueue").source)
        self._boundary_scripts_loaded = True

    # -- consuming ------------------------------------------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        # Level-major order: every queue's critical list before any high list.
        keys = [self._q_for_pri(q, step) for step in self.priority_steps for q in queues]
        self._in_poll = self.client.connection
        self._brpop_sent_at = kombu_redis.monotonic()
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
            dest = queue_of_list(bytes_to_str(dest_raw))
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
            with self.conn_or_acquire() as client:
                dead_letter_poison(
                    client,
                    self.boundary_keys,
                    queue=queue,
                    raw=raw,
                    reason=f"undecodable broker message: {exc}",
                    dlq_max_size=self.boundary_dlq_max_size,
                    dlq_max_age_days=self.boundary_dlq_max_age_days,
                )
            return None
        return payload


class Transport(kombu_redis.Transport):
    """kombu Redis transport using :class:`Channel`."""

    Channel = Channel
