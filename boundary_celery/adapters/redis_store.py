"""The Redis job store: job records, the DLQ, the scheduled set, counters, heartbeats.

Every state change is one Lua script call (one round trip, atomic). Reads are plain
commands, pipelined where several are needed. The store decides nothing: callers pass
the already-decided fields (the shell asks the core first).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import redis

from boundary_celery.adapters.redis_keys import HIST_SEP, Keys, list_keys
from boundary_celery.adapters.redis_records import flatten, record_extras, record_to_job
from boundary_celery.core.job import Job
from boundary_celery.core.stats import DURATION_BUCKETS_MS, duration_bucket

Arg = str | int | float
log = logging.getLogger("boundary_celery.store")


@dataclass(frozen=True)
class Script:
    """A Lua script run by SHA, loaded on first use on each server."""

    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


@cache
def script(name: str) -> Script:
    """The packaged Lua script ``name`` (``adapters/lua/<name>.lua``)."""
    source = resources.files("boundary_celery.adapters").joinpath(f"lua/{name}.lua").read_text()
    return Script(name, source)


def enqueue_keys(keys: Keys, target_list: str, job_id: str, queue: str) -> list[str]:
    """KEYS of ``enqueue.lua`` for one message."""
    return [
        target_list,
        keys.job(job_id),
        keys.scheduled,
        keys.scheduled_messages,
        keys.queues,
        keys.queue_stats(queue),
    ]


def enqueue_args(
    message: str,
    job_id: str,
    queue: str,
    *,
    due_ms: int | None = None,
    counter: str = "",
    delete: Sequence[str] = (),
    fields: Sequence[Arg] = (),
) -> list[Arg]:
    """ARGV of ``enqueue.lua``."""
    due = "" if due_ms is None else str(due_ms)
    return [message, due, job_id, queue, counter, len(delete), *delete, *fields]


def dead_letter_with(
    client: Any,
    keys: Keys,
    job_id: str,
    queue: str,
    now_ms: int,
    fields: Mapping[str, Arg],
    *,
    duration_ms: float | None,
    max_size: int,
    max_age_ms: int,
    count: bool = True,
) -> None:
    """Run ``dead_letter.lua`` on ``client`` (shared by the store and the transport);
    ``count`` adds the failure to the queue's counters."""
    script("dead_letter")(
        client,
        [keys.job(job_id), keys.dlq, keys.queue_stats(queue), keys.queues],
        [
            now_ms,
            job_id,
            "" if duration_ms is None else round(duration_ms, 3),
            max_size,
            now_ms - max_age_ms,
            keys.job_prefix,
            queue,
            "1" if count else "0",
            *flatten(fields),
        ],
    )


class RedisJobStore:
    """Job records and everything around them, in one Redis database.

    The redis client is created lazily per process, so a store built before a
    prefork worker forks is safe to use in its children.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "boundary",
        completed_ttl_s: int = 7 * 24 * 3600,
        dlq_max_size: int = 10_000,
        dlq_max_age_days: int = 180,
        max_connections: int = 20,
        socket_timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self.completed_ttl_s = completed_ttl_s
        self.dlq_max_size = dlq_max_size
        self.dlq_max_age_ms = dlq_max_age_days * 24 * 3600 * 1000
        self.max_connections = max_connections
        self.socket_timeout_s = socket_timeout_s
        self._client: redis.Redis | None = None
        self._pid = 0

    @property
    def client(self) -> redis.Redis:
        """This process's client (recreated after a fork)."""
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self.url,
                decode_responses=True,
                max_connections=self.max_connections,
                socket_timeout=self.socket_timeout_s,
                health_check_interval=30,
            )
            self._pid = os.getpid()
        return self._client

    # -- writes -----------------------------------------------------------------------

    def enqueue_message(
        self,
        target_list: str,
        message: str,
        job_id: str,
        queue: str,
        *,
        due_ms: int | None = None,
        counter: str = "",
        delete: Sequence[str] = (),
        fields: Sequence[Arg] = (),
        client: Any = None,
    ) -> None:
        """Push (or schedule) a serialized broker message and update its record."""
        script("enqueue")(
            client or self.client,
            enqueue_keys(self.keys, target_list, job_id, queue),
            enqueue_args(
                message, job_id, queue, due_ms=due_ms, counter=counter, delete=delete,
                fields=fields,
            ),
        )

    def begin(
        self,
        job_id: str,
        now_ms: int,
        worker: str,
        retry_count: int,
        max_retries: int,
        create: Sequence[Arg] = (),
    ) -> str:
        """Mark a delivery running; returns ``ok`` or why it must be skipped."""
        return str(
            script("begin")(
                self.client,
                [self.keys.job(job_id)],
                [now_ms, worker, retry_count, max_retries, *create],
            )
        )

    def complete(
        self,
        job_id: str,
        job_type: str,
        queue: str,
        result_json: str,
        now_ms: int,
        duration_ms: float,
    ) -> None:
        """Record a success, count it, add its duration to the job type's histogram and
        let the record expire after the TTL (one script call)."""
        k = self.keys
        script("complete")(
            self.client,
            [k.job(job_id), k.queue_stats(queue), k.duration_hist(queue, job_type),
             k.duration_index],
            [now_ms, result_json, round(duration_ms, 3), self.completed_ttl_s,
             f"b{duration_bucket(duration_ms)}", f"{queue}{HIST_SEP}{job_type}"],
        )

    def record_duration(self, job_type: str, queue: str, duration_ms: float) -> None:
        """Add one observation to a duration histogram outside ``complete`` (dead letters).
        Never raises: a metrics write must not fail a job (errors are logged)."""
        k = self.keys
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(k.duration_index, f"{queue}{HIST_SEP}{job_type}")
            pipe.hincrby(k.duration_hist(queue, job_type), f"b{duration_bucket(duration_ms)}", 1)
            pipe.hincrby(k.duration_hist(queue, job_type), "count", 1)
            pipe.hincrbyfloat(k.duration_hist(queue, job_type), "sum_ms",
                              round(max(0.0, duration_ms), 3))
            pipe.execute()
        except Exception:
            log.warning("could not record job duration", exc_info=True)

    def duration_histograms(self) -> list[tuple[str, str, list[int], int, float]]:
        """Stored histograms: (queue, job_type, per-bucket counts incl. +Inf, count, sum_ms)."""
        k = self.keys
        pairs = [tuple(m.split(HIST_SEP, 1)) for m in sorted(self.client.smembers(k.duration_index))
                 if HIST_SEP in m]
        pipe = self.client.pipeline(transaction=False)
        for queue, job_type in pairs:
            pipe.hgetall(k.duration_hist(queue, job_type))
        out = []
        for (queue, job_type), raw in zip(pairs, pipe.execute(), strict=True):
            buckets = [int(raw.get(f"b{i}", 0)) for i in range(len(DURATION_BUCKETS_MS) + 1)]
            out.append((queue, job_type, buckets, int(raw.get("count", 0)),
                        float(raw.get("sum_ms", 0.0))))
        return out

    def dead_letter(
        self,
        job_id: str,
        queue: str,
        now_ms: int,
        fields: Mapping[str, Arg],
        duration_ms: float | None = None,
        count: bool = True,
    ) -> None:
        """Put a failed job in the DLQ with its final fields; trims the DLQ to its bounds.
        ``count`` adds the failure (and its duration) to the queue's counters."""
        dead_letter_with(
            self.client, self.keys, job_id, queue, now_ms, fields,
            duration_ms=duration_ms, max_size=self.dlq_max_size, max_age_ms=self.dlq_max_age_ms,
            count=count,
        )

    def save(self, job_id: str, fields: Mapping[str, Arg]) -> None:
        """Write a whole record (replacing the fields it names)."""
        self.client.hset(self.keys.job(job_id), mapping=dict(fields))  # type: ignore[arg-type]

    def count(self, queue: str, increments: Mapping[str, float]) -> None:
        """Add to a queue's durable counters (succeeded, failed, retried, duration_ms)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.queues, queue)
        for name, amount in increments.items():
            pipe.hincrbyfloat(self.keys.queue_stats(queue), name, amount)
        pipe.execute()

    def pop_message(self, queue: str) -> str | None:
        """Take the most urgent waiting message of ``queue`` (RPOP level by level)."""
        for key in list_keys(queue):
            raw = self.client.rpop(key)
            if raw is not None:
                return str(raw)
        return None

    def update(self, job_id: str, fields: dict[str, Arg]) -> None:
        """Set fields on an existing record."""
        self.client.hset(self.keys.job(job_id), mapping=dict(fields))  # type: ignore[arg-type]

    def move_due(self, now_ms: int, batch: int = 500) -> int:
        """Publish up to ``batch`` due scheduled messages; returns how many moved."""
        k = self.keys
        return int(
            script("move_due")(
                self.client, [k.scheduled, k.scheduled_messages], [now_ms, batch, k.job_prefix]
            )
        )

    def take_from_dlq(self, job_id: str) -> bool:
        """Remove a job from the DLQ (before re-queueing it); False if it was not there."""
        return bool(self.client.zrem(self.keys.dlq, job_id))

    def purge_dlq(self, job_id: str | None = None) -> int:
        """Delete one DLQ job (and its record), or all of them; returns how many."""
        k = self.keys
        ids = [job_id] if job_id else list(self.client.zrange(k.dlq, 0, -1))
        removed = 0
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            pipe = self.client.pipeline()
            for jid in chunk:
                pipe.zrem(k.dlq, jid)
            results = pipe.execute()
            gone = [jid for jid, hit in zip(chunk, results, strict=True) if hit]
            if gone:
                self.client.delete(*(k.job(jid) for jid in gone))
            removed += len(gone)
        return removed

    def heartbeat(self, worker: str, now_ms: int, ttl_ms: int) -> None:
        """Say ``worker`` is alive now; forget workers silent for longer than ``ttl_ms``."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.workers, {worker: now_ms})
        pipe.zremrangebyscore(self.keys.workers, "-inf", now_ms - ttl_ms)
        pipe.execute()

    def worker_gone(self, worker: str) -> None:
        """Forget a worker that stopped cleanly."""
        self.client.zrem(self.keys.workers, worker)

    def erase(self, queues: Sequence[str] = ()) -> int:
        """Delete every key under the prefix and the broker lists (and kombu bindings) of
        ``queues``; returns how many keys were deleted. For test sandboxes and demos."""
        r = self.client
        doomed = list(r.scan_iter(f"{self.keys.prefix}:*", count=1000))
        for q in queues:
            doomed.extend(list_keys(q))
            doomed.extend((f"_kombu.binding.{q}", f"_kombu.binding_permanent.{q}"))
        deleted = 0
        for start in range(0, len(doomed), 500):
            deleted += int(r.delete(*doomed[start : start + 500]))
        return deleted

    # -- reads ------------------------------------------------------------------------

    def record(self, job_id: str) -> dict[str, str]:
        """The raw record (empty when unknown)."""
        return dict(self.client.hgetall(self.keys.job(job_id)))

    def find_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        rec = self.record(job_id)
        return record_to_job(rec) if rec else None

    def find_job_with_extras(self, job_id: str) -> tuple[Job, dict[str, Any]] | None:
        """The job and its store-only fields (attempts, worker)."""
        rec = self.record(job_id)
        return (record_to_job(rec), record_extras(rec)) if rec else None

    def failed_job_ids(self, limit: int = 20) -> list[str]:
        """DLQ job ids, newest first."""
        return list(self.client.zrevrange(self.keys.dlq, 0, max(limit, 1) - 1))

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        """DLQ jobs, newest first."""
        ids = self.failed_job_ids(limit)
        pipe = self.client.pipeline(transaction=False)
        for jid in ids:
            pipe.hgetall(self.keys.job(jid))
        return [record_to_job(rec) for rec in pipe.execute() if rec]

    def dlq_size(self) -> int:
        return int(self.client.zcard(self.keys.dlq))

    def scheduled_count(self) -> int:
        return int(self.client.zcard(self.keys.scheduled))

    def scheduled_ids(self, limit: int = 50) -> list[tuple[str, int]]:
        """The next scheduled job ids with their due time (ms), soonest first."""
        rows = self.client.zrange(self.keys.scheduled, 0, max(limit, 1) - 1, withscores=True)
        return [(jid, int(score)) for jid, score in rows]

    def scheduler_lag_ms(self, now_ms: int) -> float:
        """How overdue the oldest due scheduled job is (0 when none is due)."""
        rows = self.client.zrange(self.keys.scheduled, 0, 0, withscores=True)
        if not rows:
            return 0.0
        return float(max(0, now_ms - int(rows[0][1])))

    def list_queues(self) -> list[str]:
        return sorted(self.client.smembers(self.keys.queues))

    def queue_counters(self, queues: Sequence[str]) -> dict[str, dict[str, float]]:
        """Durable counters per queue: succeeded, failed, retried, duration_ms."""
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(self.keys.queue_stats(q))
        out: dict[str, dict[str, float]] = {}
        for q, raw in zip(queues, pipe.execute(), strict=True):
            out[q] = {name: float(raw.get(name, 0)) for name in
                      ("succeeded", "failed", "retried", "duration_ms")}
        return out

    def queue_depths(self, queues: Sequence[str]) -> dict[str, list[int]]:
        """Waiting messages per queue, one count per priority level (critical first)."""
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            for key in list_keys(q):
                pipe.llen(key)
        counts = pipe.execute()
        n = len(list_keys("x"))
        return {q: counts[i * n : (i + 1) * n] for i, q in enumerate(queues)}

    def active_workers(self, now_ms: int, window_ms: int) -> int:
        return int(self.client.zcount(self.keys.workers, now_ms - window_ms, "+inf"))
