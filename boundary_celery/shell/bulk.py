"""``enqueue_many``: publish many jobs in a few pipelined Redis round trips.

Each job is validated and built exactly as :meth:`Jobs.enqueue` does (``Jobs.prepare``)
and carries the same headers as :meth:`Jobs.publish` (``publishing.finish_headers``), so the
boundary transport still stores message and record atomically per job (``enqueue.lua``).
The difference is the transport: inside kombu's ``Producer.batch()`` the Redis channel
buffers every job's ``EVALSHA enqueue`` (and the task-sent event's ``PUBLISH``) in one
non-transactional pipeline, flushed every ``batch_size`` commands, instead of one round
trip per job.

Atomicity is per job, not per call: when a flush fails part-way, the jobs before the
failure may be stored. The error is raised; no id is returned for any job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kombu.utils.json import dumps

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import Job
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.publishing import finish_headers, message_args

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

#: Pipelined Redis commands per flush (kombu's default batch size).
DEFAULT_BATCH_SIZE = 1000

#: Keys of one ``items`` entry besides the options of :meth:`Jobs.build_job`.
_ITEM_KEYS = ("job_type", "args")


def build_jobs(
    jobs: Jobs, items: Sequence[Mapping[str, Any]]
) -> list[tuple[Job, tuple[str, ...]]]:
    """Validate every item before anything is published (all or nothing on bad input).

    An item is ``{"job_type": ..., "args": {...}, **options}`` with the options of
    :meth:`Jobs.build_job` (priority, queue, max_retries, metadata, tenant_id,
    execute_at, retry_policy, job_id).
    """
    now = utcnow()
    built = []
    for item in items:
        if "job_type" not in item:
            raise JobValidationError("job_type", None, f"required in enqueue_many item {item!r}")
        options = {k: v for k, v in item.items() if k not in _ITEM_KEYS}
        options.setdefault("now", now)
        built.append(jobs.prepare(item["job_type"], item.get("args"), **options))
    return built


def enqueue_many(
    jobs: Jobs,
    items: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[str]:
    """Validate and publish every item as a job; returns the job ids in order.

    Validation errors (``JobValidationError``) are raised before any job is sent.
    Messages are Celery protocol-2 task messages (``app.amqp.as_task_v2``) published on
    the default exchange straight to each job's queue; no ``task-sent`` event is sent
    (one per job would halve the rate; Flower still sees the worker's events).
    """
    built = build_jobs(jobs, items)
    if not built:
        return []
    app = jobs.app
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        messages = [(_message(jobs, channel, job, defaulted), job.queue)
                    for job, defaulted in built]
        ids = [str(job.id) for job, _ in built]
        if not hasattr(channel, "create_publish_batch"):  # kombu < 5.7: one trip per job
            for message, queue in messages:
                channel.basic_publish(message, exchange="", routing_key=queue)
            return ids
        batch = channel.create_publish_batch(max_size=batch_size)
        try:
            for message, queue in messages:
                batch.publish(message, exchange="", routing_key=queue)
            batch.flush()
        except BaseException:
            batch.discard()
            raise
        finally:
            batch.close()
        with channel.conn_or_acquire() as client:  # [redis] wait_replicas: once, at the end
            channel.await_replicas(client, ids)
    return ids


def _message(jobs: Jobs, channel: Any, job: Job, defaulted: tuple[str, ...]) -> Any:
    """The Celery protocol-2 task message of ``job``, as ``Jobs.publish`` would send it."""
    args, kwargs = message_args(job.args)
    msg = jobs.app.amqp.as_task_v2(str(job.id), job.job_type, args=tuple(args), kwargs=kwargs)
    headers = dict(msg.headers)
    finish_headers(jobs, job, headers, defaulted=defaulted)
    properties = {**msg.properties, "delivery_mode": 2, "priority": job.priority.celery}
    return channel.prepare_message(dumps(msg.body), job.priority.celery, "application/json",
                                   "utf-8", headers, properties)
