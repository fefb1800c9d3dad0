"""The Redis job store: the one owner of key names, the record format and the Lua scripts.

It implements the ``JobStore`` and ``JobStats`` ports and offers the job-level
operations the shell needs (begin, complete, dead-letter, the enqueue call of a
message, the scheduler's move, heartbeats). Every state change is one Lua script call
(one round trip, atomic); reads are plain commands, pipelined where several are needed.

The store applies decisions, it does not make them: the job it is given has already
been settled by :mod:`boundary_celery.core` (status, retry count, error, duration), and
the scripts receive the core's rules as data (e.g. the statuses a delivery skips).
The unacked deliveries (claim, leases, hand-back) are :mod:`.deliveries`' (``deliveries``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import redis

from boundary_celery.adapters.deliveries import RedisDeliveries
from boundary_celery.adapters.redis_connect import connect
from boundary_celery.adapters.redis_keys import (
    HIST_SEP,
    PRIORITY_STEPS,
    SEP,
    Keys,
    legacy_list_keys,
    list_key,
    list_keys,
)
from boundary_celery.adapters.redis_records import (
    dumps,
    flatten,
    job_fields,
    record_extras,
    record_to_job,
    to_ms,
)
from boundary_celery.adapters.redis_scripts import Arg, ScriptCall, script
from boundary_celery.core.delivery import SKIP_DELIVERY_STATUS_VALUES, delivery_verdict
from boundary_celery.core.job import Job, JobError, prepare_retry
from boundary_celery.core.priority import Priority
from boundary_celery.core.stats import (
    DURATION_BUCKETS_MS,
    JobStatsReport,
    QueueStats,
    average_duration,
    duration_bucket,
)
from boundary_celery.core.status import TERMINAL_STATUSES, CancelAction, JobStatus, cancel_rule

__all__ = ["JobDetail", "RecordWrite", "RedisJobStore", "ScheduledEntry", "ScriptCall",
           "Wakeups"]

log = logging.getLogger("boundary_celery.store")

#: A record write that travels with a message until the transport stores both at once:
#: ``{"set": [field, value, ...], "clear": [field, ...], "count": counter}``. JSON, built
#: only by the store (``*_record`` methods); everyone else passes it along unread.
RecordWrite = dict[str, Any]

#: ``requeue(job, write)``: publish ``job``'s message now with ``write`` (set by install()).
Requeue = Callable[[Job, RecordWrite], None]

#: The core's skip statuses as begin.lua reads them (one ARGV: ",a,b,").
_SKIP = "," + ",".join(SKIP_DELIVERY_STATUS_VALUES) + ","
_TERMINAL = "," + ",".join(sorted(s.value for s in TERMINAL_STATUSES)) + ","
#: Fields cleared on a record when a dead job is queued again.
_RETRY_CLEARS = ("started_at", "completed_at", "result", "duration_ms", "execute_at",
                 "cancel_requested")
_COUNTERS = ("succeeded", "failed", "retried", "duration_ms", "untimed")


@dataclass(frozen=True)
class JobDetail:
    """A job with what only the store knows about it."""

    job: Job
    attempts: int
    worker: str | None
    in_dlq: bool


@dataclass(frozen=True)
class ScheduledEntry:
    """A job waiting in the scheduled set (its record may have expired: ``job`` None)."""

    id: str
    due_at_ms: int
    job: Job | None = field(default=None)


def _readable(record: dict[str, str]) -> Job | None:
    """The job of ``record``; None when there is none or the model rejects it (one bad
    record must not hide the others in a listing)."""
    try:
        return record_to_job(record) if record else None
    except Exception:
        log.warning("unreadable job record", exc_info=True)
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Wakeups:
    """The schedulers' wake channel, subscribed on its own connection."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s; True when a sooner job was announced meanwhile."""
        return self._pubsub.get_message(timeout=timeout) is not None

    def close(self) -> None:
        self._pubsub.close()


class RedisJobStore:
    """Job records and everything around them, in one Redis database.

    The redis client is created lazily per process, so a store built before a prefork
    worker forks is safe to use in its children. A store built without ``url`` (the
    kombu transport's) is used only through methods given an explicit ``client``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "boundary",
        completed_ttl_s: int = 7 * 24 * 3600,
        dlq_max_size: int = 10_000,
        dlq_max_age_days: int = 180,
        max_connections: int = 20,
        socket_timeout_s: float = 5.0,
        worker_window_ms: int = 15_000,
        tls: Mapping[str, Any] | None = None,
        sentinel_master: str | None = None,
    ) -> None:
        self.url = url
        #: The master group of a ``sentinel://`` URL (its client follows failovers).
        self.sentinel_master = sentinel_master
        #: redis-py TLS keywords for a ``rediss://`` URL (``redis_connect.tls_options``,
        #: or the app's ``broker_use_ssl``); unused for other URLs.
        self.tls: dict[str, Any] = dict(tls or {})
        self.keys = Keys(prefix)
        self.completed_ttl_s = completed_ttl_s
        self.dlq_max_size = dlq_max_size
        self.dlq_max_age_days = dlq_max_age_days
        self.dlq_max_age_ms = dlq_max_age_days * 24 * 3600 * 1000
        self.max_connections = max_connections
        self.socket_timeout_s = socket_timeout_s
        self.worker_window_ms = worker_window_ms
        self.requeue: Requeue | None = None
        self._client: redis.Redis | None = None
        self._pid = 0

    @property
    def deliveries(self) -> RedisDeliveries:
        """The unacked entries and their leases (``adapters.deliveries``), on this
        store's client (none for the transport's store: it passes its own)."""
        return RedisDeliveries(self.keys, self.client if self.url is not None else None)

    @property
    def client(self) -> redis.Redis:
        """This process's client (recreated after a fork)."""
        if self.url is None:
            raise RuntimeError("this RedisJobStore has no URL; pass a client to the call")
        if self._client is None or self._pid != os.getpid():
            self._client = connect(
                self.url,
                tls=self.tls,
                sentinel_master=self.sentinel_master,
                decode_responses=True,
                max_connections=self.max_connections,
                socket_timeout=self.socket_timeout_s,
                health_check_interval=30,
            )
            self._pid = os.getpid()
        return self._client

    def broker_options(self) -> dict[str, Any]:
        """The kombu transport options that make the broker's keys this store's: one list
        per priority level, the unacked keys under the prefix, and the boundary
        transport's own options (prefix and DLQ bounds for messages it dead-letters)."""
        k = self.keys
        return {
            "priority_steps": list(PRIORITY_STEPS),
            "sep": SEP,
            "unacked_key": k.unacked,
            "unacked_index_key": k.unacked_index,
            "unacked_mutex_key": k.unacked_mutex,
            "boundary_prefix": k.prefix,
            "boundary_dlq_max_size": self.dlq_max_size,
            "boundary_dlq_max_age_days": self.dlq_max_age_days,
        }

    def close(self) -> None:
        """Close this process's client and its connections (a new one is made on use)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- record writes that travel with a message ----------------------------------------

    @staticmethod
    def new_record(job: Job) -> RecordWrite:
        """The whole record of a newly enqueued ``job``."""
        return {"set": flatten(job_fields(job))}

    @staticmethod
    def retry_record(job: Job, now: datetime, due: datetime) -> RecordWrite:
        """``job`` settled for a retry at ``due``: its attempt count and error; counted."""
        fields: dict[str, Arg] = {
            "status": job.status.value,
            "retry_count": job.retry_count,
            "updated_at": to_ms(now),
            "execute_at": to_ms(due),
        }
        if job.error is not None:
            fields["error"] = dumps(job.error.model_dump())
        return {"set": flatten(fields), "count": "retried"}

    @staticmethod
    def requeue_record(job: Job, now: datetime) -> RecordWrite:
        """A dead ``job`` queued again (``core.prepare_retry``): the last run's fields go."""
        fields: dict[str, Arg] = {
            "status": job.status.value,
            "retry_count": job.retry_count,
            "max_retries": job.max_retries,
            "updated_at": to_ms(now),
        }
        return {"set": flatten(fields), "clear": list(_RETRY_CLEARS)}

    @staticmethod
    def reschedule_record(now: datetime, due: datetime) -> RecordWrite:
        """A job put back in the scheduled set until ``due`` (no handler yet)."""
        return {"set": ["status", JobStatus.SCHEDULED.value, "updated_at", to_ms(now),
                        "execute_at", to_ms(due)]}

    # -- job-level writes ------------------------------------------------------------------

    def enqueue_call(
        self,
        queue: str,
        target_list: str,
        message: str,
        job_id: str,
        *,
        due_ms: int | None = None,
        write: RecordWrite | None = None,
        token: str = "",
    ) -> ScriptCall:
        """The ``enqueue`` call storing a serialized broker ``message`` and its record
        write at once: pushed on ``target_list`` (a list of ``queue``), or held in the
        scheduled set until ``due_ms``. A ``token`` makes it idempotent: the same call
        sent again (a publish retried after a lost reply) stores nothing more."""
        k = self.keys
        write = write or {}
        clear = [str(f) for f in write.get("clear") or ()]
        fields = list(write.get("set") or ())
        return ScriptCall(
            script("enqueue"),
            (target_list, k.job(job_id), k.scheduled, k.scheduled_messages, k.queues,
             k.queue_stats(queue), k.scheduler_wake, k.lists_wake),
            (message, "" if due_ms is None else str(due_ms), job_id, queue,
             str(write.get("count") or ""), token, len(clear), *clear, *fields),
        )

    def enqueue(self, queue: str, priority: Priority, message: str, job_id: str, *,
                due: datetime | None = None, write: RecordWrite | None = None) -> None:
        """Store ``message`` at ``queue``'s ``priority`` level (or until ``due``) with its
        record write; one round trip."""
        self.enqueue_call(
            queue, list_key(queue, priority.celery), message, job_id,
            due_ms=None if due is None else to_ms(due), write=write,
        ).run(self.client)

    def begin_call(self, job_id: str, now: datetime, worker: str, retry_count: int,
                   max_retries: int, create: Job | None = None, *, tag: str = "",
                   lease_s: float = 0.0) -> ScriptCall:
        """The ``begin`` call marking a delivery running unless the core's verdict says to
        skip it (see ``core.delivery``); ``create`` gives the record to write when none
        exists. ``tag`` is the delivery's (kept in the record): another delivery of the
        same attempt whose lease was renewed within ``lease_s`` makes this one ``busy``.
        Its reply is ``ok`` or the reason to skip."""
        created = flatten(job_fields(create)) if create is not None else []
        return ScriptCall(
            script("begin"),
            (self.keys.job(job_id), self.keys.unacked_index),
            (to_ms(now), worker, retry_count, max_retries, _SKIP, tag,
             repr(now.timestamp() - lease_s), *created),
        )

    def begin(self, job: Job, now: datetime, worker: str, *, tag: str = "",
              lease_s: float = 0.0) -> str:
        """Mark ``job``'s delivery running (creating its record if missing); returns
        ``ok`` or why it must be skipped (see :meth:`begin_call`)."""
        call = self.begin_call(str(job.id), now, worker, job.retry_count, job.max_retries,
                               create=job.model_copy(update={"created_at": now}), tag=tag,
                               lease_s=lease_s)
        return _text(call.run(self.client))

    def complete(self, job: Job, now: datetime) -> None:
        """Record ``job``'s success (result, duration), count it, add its duration to the
        job type's histogram and let the record expire after the TTL (one script call).
        A record already terminal is left as it is (a retried write is counted once)."""
        k = self.keys
        duration = round(job.duration_ms or 0.0, 3)
        script("complete")(
            self.client,
            [k.job(str(job.id)), k.queue_stats(job.queue), k.duration_hist(job.queue, job.job_type),
             k.duration_index],
            [to_ms(now), dumps(job.result), duration, self.completed_ttl_s,
             f"b{duration_bucket(duration)}", f"{job.queue}{HIST_SEP}{job.job_type}",
             _TERMINAL],
        )

    def dead_letter(self, job: Job, *, count: bool = False, client: Any = None) -> None:
        """Save ``job`` (already settled as failed) at the head of the DLQ (newest first by
        the time it was dead-lettered); trims the DLQ to its bounds. ``count`` adds the
        failure to the queue's counters and its duration histogram (the port form leaves
        counting to :meth:`record_outcome`)."""
        k = self.keys
        jid, queue = str(job.id), job.queue
        now_ms = to_ms(datetime.now(UTC))
        duration = "" if job.duration_ms is None else round(job.duration_ms, 3)
        script("dead_letter")(
            client or self.client,
            [k.job(jid), k.dlq, k.queue_stats(queue), k.queues,
             k.duration_hist(queue, job.job_type), k.duration_index],
            [now_ms, jid, duration, self.dlq_max_size, now_ms - self.dlq_max_age_ms,
             k.job_prefix, queue, "1" if count else "0",
             f"b{duration_bucket(job.duration_ms or 0.0)}", f"{queue}{HIST_SEP}{job.job_type}",
             *flatten(job_fields(job))],
        )

    def save_job(self, job: Job) -> None:
        """Insert or replace the record of ``job``."""
        key = self.keys.job(str(job.id))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=job_fields(job))  # type: ignore[arg-type]
        pipe.execute()

    def record_outcome(self, job: Job) -> None:
        """Count a terminal outcome (completed or failed) and its duration. Jobs run by
        workers are counted by ``complete``/``dead_letter(count=True)`` already."""
        if job.status not in (JobStatus.COMPLETED, JobStatus.FAILED):
            return
        name = "succeeded" if job.status is JobStatus.COMPLETED else "failed"
        increments: dict[str, float] = {name: 1}
        if job.duration_ms is None:  # never ran: left out of the average
            increments["untimed"] = 1
        else:
            increments["duration_ms"] = job.duration_ms
        self._count(job.queue, increments)

    def record_retry(self, job: Job) -> None:
        """Count one automatic retry of ``job``."""
        self._count(job.queue, {"retried": 1})

    def _count(self, queue: str, increments: dict[str, float]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.queues, queue)
        for name, amount in increments.items():
            pipe.hincrbyfloat(self.keys.queue_stats(queue), name, amount)
        pipe.execute()

    # -- cancellation ----------------------------------------------------------------------

    def cancel(self, job_id: UUID | str, now: datetime, *, stopped: bool = False,
               reason: JobError | None = None) -> tuple[CancelAction, Job] | None:
        """Cancel ``job_id`` as ``core.cancel_action`` decides, in one script call
        (``cancel.lua``): a pending, scheduled or retrying job becomes cancelled (out of
        the scheduled set; a message still in a queue is skipped when delivered), a
        running one gets the ``cancel_requested`` field, a finished one is left alone.
        ``stopped``: the worker skipped or killed the delivery, so running cancels too.
        ``reason`` becomes the record's error when it is cancelled now (e.g. expired).
        Returns the action and the job after it; None for an unknown id."""
        try:
            jid = str(UUID(str(job_id)))
        except ValueError:
            return None
        cancel_now, request = cancel_rule(stopped=stopped)
        k = self.keys
        reply = script("cancel")(
            self.client, [k.job(jid), k.scheduled, k.scheduled_messages],
            [to_ms(now), jid, ",".join(("", *cancel_now, "")),
             ",".join(("", *request, "")), self.completed_ttl_s,
             dumps(reason.model_dump()) if reason is not None else ""],
        )
        if not reply:
            return None
        action, *flat = (_text(item) for item in reply)
        return CancelAction(action), record_to_job(dict(zip(flat[::2], flat[1::2], strict=True)))

    def cancel_job(self, job_id: UUID | str, now: datetime | None = None) -> Job | None:
        """Port form of :meth:`cancel`: the job after it, None for an unknown id."""
        done = self.cancel(job_id, now or datetime.now(UTC))
        return done[1] if done is not None else None

    def start_verdict(self, job_id: str, retry_count: int) -> str:
        """``core.delivery_verdict`` for a delivery about to start, from the record as it
        is now; ``"cancelled"`` too when a cancellation was requested (one HMGET)."""
        status, rc, flag = self.client.hmget(self.keys.job(job_id), "status", "retry_count",
                                             "cancel_requested")
        if flag is not None:
            return JobStatus.CANCELLED.value
        return delivery_verdict(status, int(rc) if rc is not None else None, retry_count)

    def cancel_requested(self, job_id: UUID | str) -> bool:
        """Whether ``job_id``'s cancellation was requested or it is cancelled (one HMGET)."""
        flag, status = self.client.hmget(self.keys.job(str(job_id)), "cancel_requested",
                                         "status")
        return flag is not None or status == JobStatus.CANCELLED.value

    def move_due(self, now: datetime, batch: int = 500) -> int:
        """Publish up to ``batch`` due scheduled messages; returns how many moved."""
        k = self.keys
        return int(script("move_due")(
            self.client, [k.scheduled, k.scheduled_messages, k.lists_wake],
            [to_ms(now), batch, k.job_prefix]
        ))

    def retry_job(self, job_id: UUID | str, reset_retries: bool = False,
                  now: datetime | None = None) -> Job | None:
        """Re-queue a dead-lettered job now at its own queue and priority (prepared by
        ``core.prepare_retry``, published through :attr:`requeue`); ``None`` when the id
        is unknown or the job is not in the DLQ. Put back in the DLQ if publishing fails."""
        jid = str(job_id)
        if self.requeue is None:
            raise RuntimeError("this store cannot publish (no requeue set by install())")
        job = self.find_job(jid)
        if job is None or not self.client.zrem(self.keys.dlq, jid):
            return None
        moment = now or datetime.now(UTC)
        again = prepare_retry(job, moment, reset_retries=reset_retries)
        try:
            self.requeue(again, self.requeue_record(again, moment))
        except Exception:
            self.client.zadd(self.keys.dlq, {jid: to_ms(moment)})
            raise
        return again

    def purge_dlq(self, job_id: UUID | str | None = None) -> int:
        """Delete one DLQ job (and its record), or all of them; returns how many."""
        k = self.keys
        ids = [str(job_id)] if job_id is not None else list(self.client.zrange(k.dlq, 0, -1))
        removed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline()
            for jid in chunk:
                pipe.zrem(k.dlq, jid)
            gone = [jid for jid, hit in zip(chunk, pipe.execute(), strict=True) if hit]
            if gone:
                self.client.delete(*(k.job(jid) for jid in gone))
            removed += len(gone)
        return removed

    def heartbeat(self, worker: str, now: datetime, ttl_ms: int,
                  leases: Sequence[str] = ()) -> None:
        """Say ``worker`` is alive now; forget workers silent for longer than ``ttl_ms``;
        renew the lease on every delivery ``worker`` holds (the delivery tags in
        ``leases``; one command whatever their number, and an acked one stays gone)."""
        now_ms = to_ms(now)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.workers, {worker: now_ms})
        pipe.zremrangebyscore(self.keys.workers, "-inf", now_ms - ttl_ms)
        self.deliveries.renew(leases, now.timestamp(), pipe)
        pipe.execute()

    def lease_ages(self) -> dict[str, float]:
        """Seconds since each held delivery's lease was last renewed, by delivery tag."""
        now = time.time()
        return {tag: now - start for tag, start in self.deliveries.leases().items()}

    def worker_gone(self, worker: str) -> None:
        """Forget a worker that stopped cleanly."""
        self.client.zrem(self.keys.workers, worker)

    def last_heartbeat_ms(self, worker: str) -> int | None:
        """When ``worker`` last beat (epoch ms), or None: it never did, stopped cleanly,
        or was forgotten after three silent intervals."""
        score = self.client.zscore(self.keys.workers, worker)
        return None if score is None else int(score)

    def ping(self) -> None:
        """Raise a ``redis.RedisError`` unless Redis answers (within the client's
        timeout)."""
        self.client.ping()

    def await_replicas(self, client: Any, replicas: int, timeout_ms: int) -> int:
        """How many replicas have every write made on this master before the call,
        waiting until ``replicas`` have (at most ``timeout_ms``). ``WAIT`` counts the
        writes of its own connection only, so it follows a write of the fence counter on
        the same connection: a replica that has the fence has everything before it."""
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(self.keys.replica_fence)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            return int(pipe.execute()[1])

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

    # -- reads ---------------------------------------------------------------------------

    def record(self, job_id: str) -> dict[str, str]:
        """The raw record (empty when unknown): for tests and debugging."""
        return dict(self.client.hgetall(self.keys.job(job_id)))

    def status_of(self, job_id: str, client: Any = None) -> JobStatus | None:
        """The stored status of ``job_id`` alone (None: no record), one HGET."""
        raw = (client or self.client).hget(self.keys.job(job_id), "status")
        return None if raw is None else JobStatus(_text(raw))

    def find_job(self, job_id: UUID | str) -> Job | None:
        """The record of ``job_id``; ``None`` when unknown or not a UUID."""
        try:
            jid = str(UUID(str(job_id)))
        except ValueError:
            return None
        rec = self.record(jid)
        return record_to_job(rec) if rec else None

    def job_detail(self, job_id: str) -> JobDetail | None:
        """The job, its attempts and last worker, and whether it is in the DLQ."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.zscore(self.keys.dlq, job_id)
        rec, score = pipe.execute()
        if not rec:
            return None
        extras = record_extras(rec)
        return JobDetail(record_to_job(rec), extras["attempts"], extras["worker"],
                         score is not None)

    def failed_jobs(self, limit: int = 20) -> list[Job]:
        """Dead-lettered jobs, most recent first, at most ``limit``."""
        if limit < 1:
            return []
        ids = self.client.zrevrange(self.keys.dlq, 0, limit - 1)
        return [record_to_job(rec) for rec in self._records(ids) if rec]

    def _records(self, ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for jid in ids:
            pipe.hgetall(self.keys.job(jid))
        return list(pipe.execute()) if ids else []

    def dlq_size(self) -> int:
        """Number of jobs in the DLQ."""
        return int(self.client.zcard(self.keys.dlq))

    def scheduled_count(self) -> int:
        """Jobs waiting for their due time (delayed jobs and retries)."""
        return int(self.client.zcard(self.keys.scheduled))

    def scheduled_jobs(self, limit: int = 50) -> list[ScheduledEntry]:
        """The next scheduled jobs with their due time, soonest first."""
        rows = self.client.zrange(self.keys.scheduled, 0, max(limit, 1) - 1, withscores=True)
        records = self._records([jid for jid, _ in rows])
        return [ScheduledEntry(jid, int(due), _readable(rec))
                for (jid, due), rec in zip(rows, records, strict=True)]

    def next_due_ms(self) -> int | None:
        """When the soonest scheduled job is due (epoch ms), or None when none waits."""
        rows = self.client.zrange(self.keys.scheduled, 0, 0, withscores=True)
        return int(rows[0][1]) if rows else None

    def wakeups(self) -> Wakeups:
        """A subscription that reports when a job due sooner than all others is scheduled."""
        return Wakeups(self.client, self.keys.scheduler_wake)

    def scheduler_lag_ms(self, now: datetime) -> float:
        """How overdue the oldest due scheduled job is (0 when none is due)."""
        rows = self.client.zrange(self.keys.scheduled, 0, 0, withscores=True)
        return float(max(0, to_ms(now) - int(rows[0][1]))) if rows else 0.0

    def list_queues(self) -> list[str]:
        """Names of the queues that ever held a job, sorted."""
        return sorted(self.client.smembers(self.keys.queues))

    def queue_depths(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Waiting messages per queue and priority value (every level present)."""
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            for key in list_keys(q):
                pipe.llen(key)
        counts = pipe.execute() if queues else []
        n = len(PRIORITY_STEPS)
        return {q: {Priority.from_celery(step).value: int(counts[i * n + j])
                    for j, step in enumerate(PRIORITY_STEPS)}
                for i, q in enumerate(queues)}

    def legacy_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in lists only a producer without boundary-celery fills (kombu's
        default priority steps 3 and 9), per queue: no boundary worker reads them until
        :meth:`move_legacy` moves them."""
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            for key in legacy_list_keys(q):
                pipe.llen(key)
        counts = pipe.execute() if queues else []
        n = len(legacy_list_keys("x"))
        return {q: sum(int(c) for c in counts[i * n : (i + 1) * n]) for i, q in enumerate(queues)}

    def move_legacy(self, queue: str) -> int:
        """Move ``queue``'s messages out of the legacy lists into the list of their
        priority, oldest first (FIFO kept), in atomic batches; returns how many moved."""
        total = 0
        while True:
            moved = int(script("move_legacy")(
                self.client, [*legacy_list_keys(queue)], [queue, SEP, 500, *PRIORITY_STEPS]))
            total += moved
            if moved < 500:
                return total

    def eta_messages(self) -> int:
        """Messages a worker holds unacknowledged with a Celery ``eta`` (waiting in its
        memory rather than in the scheduler): this prefix's and kombu's default key."""
        found = 0
        for key in (self.keys.unacked, "unacked"):
            for _, raw in self.client.hscan_iter(key, count=500):
                try:
                    message = json.loads(raw)[0]
                    if (message.get("headers") or {}).get("eta"):
                        found += 1
                except (ValueError, TypeError, IndexError, AttributeError):
                    continue
        return found

    def pop_job(self, queue: str) -> Job | None:
        """Take the most urgent waiting message of ``queue`` off the broker and return its
        job (the caller runs it; a Celery worker normally does this)."""
        for key in list_keys(queue):
            raw = self.client.rpop(key)
            if raw is not None:
                return self.find_job(str(json.loads(str(raw))["headers"]["id"]))
        return None

    def queue_stats(self, queue_name: str) -> QueueStats:
        """Size and counters of one queue (zeros for an unknown queue)."""
        return self._queue_stats([queue_name])[0]

    def _queue_stats(self, queues: list[str]) -> list[QueueStats]:
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(self.keys.queue_stats(q))
        raw_counters = pipe.execute() if queues else []
        depths = self.queue_depths(queues)
        out = []
        for q, raw in zip(queues, raw_counters, strict=True):
            c = {name: float(raw.get(name, 0)) for name in _COUNTERS}
            processed = int(c["succeeded"] + c["failed"])
            timed = processed - c["untimed"]  # outcomes that ran (and so have a duration)
            out.append(QueueStats(
                queue_name=q,
                size=sum(depths[q].values()),
                processed_total=processed,
                succeeded_total=int(c["succeeded"]),
                failed_total=int(c["failed"]),
                retried_total=int(c["retried"]),
                avg_duration_ms=round(average_duration(c["duration_ms"], int(timed)), 3),
                size_by_priority=depths[q],
            ))
        return out

    def job_stats(self, now: datetime | None = None) -> JobStatsReport:
        """Totals, workers, DLQ and scheduler figures, and one entry per queue."""
        queues = self._queue_stats(self.list_queues())
        moment = now or datetime.now(UTC)
        now_ms = to_ms(moment)
        return JobStatsReport(
            total_processed=sum(q.processed_total for q in queues),
            total_succeeded=sum(q.succeeded_total for q in queues),
            total_failed=sum(q.failed_total for q in queues),
            total_retried=sum(q.retried_total for q in queues),
            active_workers=int(self.client.zcount(self.keys.workers,
                                                  now_ms - self.worker_window_ms, "+inf")),
            dlq_size=self.dlq_size(),
            scheduled_count=self.scheduled_count(),
            scheduler_lag_ms=self.scheduler_lag_ms(moment),
            queues=queues,
        )

    def duration_histograms(self) -> list[tuple[str, str, list[int], int, float]]:
        """Stored histograms: (queue, job_type, per-bucket counts incl. +Inf, count, sum_ms)."""
        k = self.keys
        pairs = [tuple(m.split(HIST_SEP, 1)) for m in sorted(self.client.smembers(k.duration_index))
                 if HIST_SEP in m]
        pipe = self.client.pipeline(transaction=False)
        for queue, job_type in pairs:
            pipe.hgetall(k.duration_hist(queue, job_type))
        out = []
        for (queue, job_type), raw in zip(pairs, pipe.execute() if pairs else [], strict=True):
            buckets = [int(raw.get(f"b{i}", 0)) for i in range(len(DURATION_BUCKETS_MS) + 1)]
            out.append((queue, job_type, buckets, int(raw.get("count", 0)),
                        float(raw.get("sum_ms", 0.0))))
        return out
