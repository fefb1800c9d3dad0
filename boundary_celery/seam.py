"""The seam with Celery, kombu and billiard: every private or undocumented name we use.

boundary-celery works *inside* Celery's worker and kombu's Redis transport: it subclasses
their classes, overrides underscore methods, reads their internal attributes and calls
functions of private modules. None of that is a public API, so a Celery or kombu release
may rename or reshape any of it without notice. :data:`SEAM` lists each such name once,
with what we do with it and where, so an upgrade fails a named test
(``tests/unit/test_seam.py``: each name still exists on the installed versions, methods
still take the parameters we pass or receive, and no private name is used in
``boundary_celery/`` without an entry here). Plain data: nothing here imports Celery.

- ``owner``: the dotted path of the class or module that has the name.
- ``kind``: ``override`` (we define or assign it, and the library calls or reads ours),
  ``read`` (we read it, or rely on how the library fills it) or ``call`` (we call it).
- ``where``: our modules (under ``boundary_celery.``) that use it.
- ``params``: for methods and functions, the parameters we pass or receive by name.
- ``versions``: when the name exists only on some versions, where it does (our code
  checks for it there, e.g. ``getattr`` with a default); empty: every supported version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["override", "read", "call"]


@dataclass(frozen=True)
class SeamName:
    """One private or undocumented name of Celery, kombu or billiard that we rely on."""

    owner: str
    name: str
    kind: Kind
    where: tuple[str, ...]
    params: tuple[str, ...] = ()
    versions: str = ""
    note: str = ""

    @property
    def private(self) -> bool:
        """True for an underscore name (not a dunder), or any name of a private module."""
        return (self.name.startswith("_") and not self.name.startswith("__")) or any(
            part.startswith("_") for part in self.owner.split("."))


_REDIS = "kombu.transport.redis"
_CHANNEL = f"{_REDIS}.Channel"
_QOS = f"{_REDIS}.QoS"
_T = ("shell.transport",)

SEAM: tuple[SeamName, ...] = (
    # -- kombu's Redis channel: publish, fetch, restore ----------------------------------
    SeamName(_CHANNEL, "_put", "override", _T, ("queue", "message"),
             note="publishes a job's message and record atomically (enqueue.lua)"),
    SeamName(_CHANNEL, "_publish_batch", "read", _T, versions="kombu>=5.7",
             note="the batch kombu passes to _put inside Producer.batch()"),
    SeamName(_CHANNEL, "create_publish_batch", "call", ("shell.bulk",), ("max_size",),
             versions="kombu>=5.7"),
    SeamName(_CHANNEL, "prepare_message", "call", ("shell.bulk",),
             ("body", "priority", "content_type", "content_encoding", "headers",
              "properties"), note="passed positionally, in this order"),
    SeamName(_CHANNEL, "_brpop_start", "override", _T, ("timeout",),
             note="sends claim.lua, the wake-stream wait or BRPOP on the BRPOP connection"),
    SeamName(_CHANNEL, "_brpop_read", "override", _T, ("options",),
             note="kombu's poller calls it to read what _brpop_start sent"),
    SeamName(_CHANNEL, "_in_poll", "override", _T,
             note="set to the connection with a fetch in flight, None when idle"),
    SeamName(_CHANNEL, "_brpop_sent_at", "override", _T, versions="kombu>=5.7",
             note="kombu's stale-BRPOP check reads it"),
    SeamName(_CHANNEL, "_flush_brpop_reauth", "call", _T, versions="kombu>=5.7"),
    SeamName(_CHANNEL, "_closing", "read", _T),
    SeamName(_CHANNEL, "brpop_timeout", "read", _T, versions="kombu>=5.6",
             note="getattr with kombu's 1 s default before 5.6"),
    SeamName(_CHANNEL, "_q_for_pri", "call", _T, ("queue", "pri"),
             note="a queue's list for a priority step"),
    SeamName(_CHANNEL, "_get_message_priority", "call", _T, ("message", "reverse")),
    SeamName(_CHANNEL, "_queue_cycle", "read", _T,
             note=".consume(n) and .rotate(queue): kombu's fair queue order"),
    SeamName(_CHANNEL, "_do_restore_message", "override", _T,
             ("payload", "exchange", "routing_key", "pipe", "leftmost"),
             note="by the deliveries' push_back (wakes idle workers); kombu's _restore"),
    SeamName(_CHANNEL, "_create_client", "call", _T),
    SeamName("kombu.transport.virtual.Channel", "_lookup", "call", _T,
             ("exchange", "routing_key"),
             note="the queues a handed-back message returns to (kombu's routing)"),
    SeamName(_CHANNEL, "conn_or_acquire", "override", _T, ("client",),
             note="one cached client per pool"),
    SeamName(_CHANNEL, "basic_consume", "override", _T, ("queue",),
             note="no_ack is its second positional argument (virtual.Channel)"),
    SeamName(_CHANNEL, "QoS", "override", _T),
    SeamName(_CHANNEL, "from_transport_options", "override", _T),
    SeamName(_CHANNEL, "priority_steps", "read", _T),
    SeamName(_CHANNEL, "sep", "read", _T),
    SeamName(_CHANNEL, "active_queues", "read", _T),
    SeamName(_CHANNEL, "client", "read", _T,
             note="the BRPOP client: .connection.send_command, .parse_response"),
    SeamName(_CHANNEL, "pool", "read", _T),
    SeamName("kombu.transport.virtual.Channel", "_inplace_augment_message", "read",
             ("adapters.lua",),
             note="puts delivery_tag last in the message: claim.lua reads it off the end"),
    SeamName("kombu.transport.virtual.Transport", "_deliver", "call", _T,
             ("message", "queue")),
    SeamName("kombu.transport.virtual.Transport", "_callbacks", "read", _T),
    # -- kombu's Redis ack emulation (QoS) -----------------------------------------------
    SeamName(_QOS, "append", "override", _T, ("message", "delivery_tag")),
    SeamName(_QOS, "ack", "override", _T, ("delivery_tag",)),
    SeamName(_QOS, "_remove_from_indices", "override", _T, ("delivery_tag", "pipe"),
             note="every ack, reject and restore goes through it"),
    SeamName(_QOS, "restore_visible", "override", _T, ("start", "num", "interval"),
             note="the lease sweep; kombu calls it every unacked_restore_interval"),
    SeamName(_QOS, "restore_unacked", "override", _T, ("client",),
             note="called at a channel close"),
    SeamName(_QOS, "restore_by_tag", "override", _T, ("tag", "client", "leftmost"),
             note="kombu's reject(requeue=True) and its restores call it"),
    SeamName(_QOS, "pipe_or_acquire", "call", _T),
    SeamName(_QOS, "can_consume", "call", _T),
    SeamName(_QOS, "_delivered", "read", _T,
             note="delivery tag -> message of this channel's unacked deliveries"),
    SeamName(_CHANNEL, "unacked_key", "read", ("adapters.redis_store",),
             note="set to ours; entries are JSON [payload, exchange, routing_key] "
                  "(adapters.deliveries writes and reads them)"),
    SeamName(_CHANNEL, "unacked_index_key", "read", ("adapters.redis_store",)),
    SeamName(_CHANNEL, "unacked_mutex_key", "read", ("adapters.redis_store",)),
    SeamName(_QOS, "unacked_mutex_expire", "read", _T),
    SeamName(_QOS, "visibility_timeout", "read", _T, note="the lease, lease_s"),
    SeamName("kombu.transport.virtual.QoS", "append", "call", _T,
             ("message", "delivery_tag"), note="unbound: skips the Redis bookkeeping"),
    SeamName("kombu.transport.virtual.QoS", "ack", "call", _T, ("delivery_tag",),
             note="unbound: forgets the delivery on this channel only"),
    SeamName(_REDIS, "Empty", "read", _T),
    SeamName(_REDIS, "time", "call", _T),
    SeamName(_REDIS, "get_redis_error_classes", "call", ("shell.timeouts",)),
    SeamName("kombu.transport.virtual.Message", "_raw", "read", (*_T, "shell.consumer"),
             note="the broker message as decoded, stored in the unacked entry"),
    # -- kombu connections ---------------------------------------------------------------
    SeamName("kombu.connection.Connection", "switch", "override", ("shell.connection",),
             ("conn_str",)),
    SeamName("kombu.connection.Connection", "Pool", "override", ("shell.connection",),
             ("limit",)),
    SeamName("kombu.connection.Connection", "_info", "call", ("shell.connection",),
             ("resolve",)),
    SeamName("kombu.connection.Connection", "transport_cls", "read", ("shell.connection",)),
    SeamName("kombu.connection.Connection", "resolve_aliases", "override",
             ("shell.flower",), note="an entry added per Boundary transport alias"),
    SeamName("kombu.connection.ConnectionPool", "new", "override", ("shell.connection",)),
    SeamName("kombu.connection", "PooledConnection", "override", ("shell.connection",),
             versions="kombu>=5.5", note="subclassed: a pool's connections"),
    SeamName("kombu.transport", "TRANSPORT_ALIASES", "override", ("shell.flower",)),
    SeamName("kombu.utils.json", "loads", "call", ("shell.envelope",), ("s", "_loads"),
             note="_loads: our strict decoder"),
    SeamName("kombu.utils.json", "object_hook", "call", ("shell.envelope",)),
    # -- Celery: publishing ----------------------------------------------------------------
    SeamName("celery.app.amqp.AMQP", "_create_task_sender", "override",
             ("shell.publishing",), note="wraps send_task_message"),
    SeamName("celery.app.amqp.AMQP", "Router", "override", ("shell.publishing",),
             ("queues", "create_missing")),
    SeamName("celery.app.amqp.AMQP", "Connection", "override", ("shell.publishing",)),
    SeamName("celery.app.routes.Router", "__init__", "call", ("shell.publishing",),
             ("routes", "queues", "create_missing", "app"),
             note="routes, queues, create_missing passed positionally"),
    SeamName("celery.app.routes.Router", "route", "override", ("shell.publishing",),
             ("options", "name")),
    SeamName("celery.app.amqp.Queues", "_consume_from", "read", ("shell.install",),
             note="None unless -Q chose the queues"),
    SeamName("celery.app.amqp.Queues", "_default_consume_from", "read", ("shell.install",),
             versions="celery>=5.7"),
    SeamName("celery.app.base.Celery", "_custom_task_cls_used", "read", ("shell.install",)),
    SeamName("celery.app.base.Celery", "_task_from_fun", "override", ("shell.install",),
             ("fun", "name", "base"), note="wrapped on the app: builds every task class"),
    SeamName("celery.app.base.Celery", "_decorated", "read", ("shell.task_base",),
             note="in the __dict__ of each task class _task_from_fun builds"),
    SeamName("celery.app.base.Celery", "_app", "read", ("shell.install", "shell.task_base"),
             note="in the __dict__ of the Task class create_task_cls builds"),
    SeamName("celery.app.base.Celery", "Task", "read", ("shell.install",),
             note="a cached_property: dropped from app.__dict__ to rebuild it"),
    SeamName("celery.app.base.Celery", "amqp", "read", ("shell.install",),
             note="a cached_property, as Task"),
    SeamName("celery.app.base.Celery", "control", "read", ("shell.revoked",),
             note="a cached_property, as Task"),
    SeamName("celery.app.defaults", "DEFAULTS", "read",
             ("shell.conf_policy", "shell.timeouts")),
    # -- Celery: the worker ----------------------------------------------------------------
    SeamName("celery.worker.consumer.Consumer", "on_close", "override",
             ("shell.consumer",)),
    SeamName("celery.worker.consumer.Consumer", "on_unknown_task", "override",
             ("shell.consumer",), ("body", "message", "exc")),
    SeamName("celery.worker.consumer.Consumer", "on_invalid_task", "override",
             ("shell.consumer",), ("body", "message", "exc")),
    SeamName("celery.worker.consumer.Consumer", "on_decode_error", "override",
             ("shell.consumer",), ("message", "exc")),
    SeamName("celery.worker.consumer.Consumer", "on_unknown_message", "override",
             ("shell.consumer",), ("body", "message")),
    SeamName("celery.worker.request.Request", "on_retry", "override", ("shell.consumer",),
             ("exc_info",)),
    SeamName("celery.worker.request.Request", "on_failure", "override", ("shell.consumer",),
             ("exc_info", "send_failed_event", "return_ok")),
    SeamName("celery.worker.request.Request", "on_timeout", "override", ("shell.consumer",),
             ("soft", "timeout")),
    SeamName("celery.worker.request.Request", "acknowledge", "call", ("shell.consumer",)),
    SeamName("celery.worker.request.Request", "acknowledged", "read",
             ("shell.consumer", "shell.shutdown")),
    SeamName("celery.worker.request.Request", "message", "read", ("shell.consumer",)),
    SeamName("celery.worker.request.Request", "_context", "read", ("shell.interrupted",),
             note="the task's request context, for signature_from_request"),
    SeamName("celery.worker.request.Request", "time_start", "read", ("shell.interrupted",)),
    SeamName("celery.worker.request.Request", "task", "read", ("shell.interrupted",)),
    SeamName("celery.worker.state", "task_ready", "call", ("shell.consumer",),
             ("request",)),
    SeamName("celery.worker.state", "active_requests", "read", (*_T, "shell.shutdown"),
             note="the requests the pool started: what a channel close keeps"),
    SeamName("celery.worker.state", "total_count", "read", ("shell.logfmt",)),
    SeamName("celery.worker.state", "successful_requests", "read", ("shell.shutdown",)),
    SeamName("celery.apps.worker", "on_cold_shutdown", "read", ("shell.shutdown",),
             versions="celery>=5.5", note="whether SIGQUIT stops the running jobs itself"),
    SeamName("celery.worker.request.Request", "worker_pid", "read", ("shell.shutdown",)),
    SeamName("celery._state", "get_current_task", "call", ("shell.logfmt",)),
    SeamName("celery.app.task.Task", "__call__", "override", ("shell.task",),
             note="the tracer runs it only when overridden (task_has_custom)"),
    SeamName("celery.app.trace", "task_has_custom", "read", ("shell.execution",),
             note="why _custom_call looks for a user's __call__ below ours"),
    SeamName("celery.app.task.Task", "Request", "override", ("shell.task",)),
    SeamName("celery.app.task.Task", "signature_from_request", "call",
             ("shell.interrupted",), ("request", "args", "kwargs")),
    SeamName("celery.backends.base.BaseBackend", "_store_result", "override",
             ("shell.results",), ("task_id", "result", "state", "traceback", "request")),
    SeamName("celery.backends.base.BaseBackend", "_get_task_meta_for", "override",
             ("shell.results",), ("task_id",)),
    SeamName("celery.backends.base.BaseBackend", "_forget", "override", ("shell.results",),
             ("task_id",)),
    SeamName("celery.backends.base.BaseBackend", "_save_group", "override",
             ("shell.results",), ("group_id", "result")),
    SeamName("celery.backends.base.BaseBackend", "_restore_group", "override",
             ("shell.results",), ("group_id",)),
    SeamName("celery.backends.base.BaseBackend", "wait_for", "override", ("shell.results",),
             ("task_id", "timeout", "interval", "no_ack", "on_interval")),
    SeamName("celery.worker.components", "Pool", "read", ("shell.worker_step",),
             note="our bootstep requires it by path"),
    SeamName("celery.worker.components.Pool", "register_with_event_loop", "override",
             ("shell.worker_step",), ("w", "hub"),
             note="the step hook WorkController.register_with_event_loop sends"),
    SeamName("celery.concurrency.prefork.TaskPool", "_pool", "read",
             ("shell.pool_limits", "shell.shutdown"), note="the AsynPool of worker.pool"),
    SeamName("billiard.pool.Pool", "_pool", "read", ("shell.shutdown",),
             note="the pool's child processes"),
    SeamName("billiard.process.BaseProcess", "_controlled_termination", "override",
             ("shell.shutdown",), note="set as billiard's terminate_job does: no error log"),
    SeamName("celery.concurrency.asynpool.AsynPool", "_create_timelimit_handlers",
             "override", ("shell.pool_limits",), ("hub",),
             note="replaced on the instance; ours calls it first"),
    SeamName("celery.concurrency.asynpool.AsynPool", "on_timeout_set", "override",
             ("shell.pool_limits",), ("R", "soft", "hard"),
             note="set on the instance by _create_timelimit_handlers; ours wraps it"),
    SeamName("billiard.einfo.ExceptionWithTraceback", "exc", "read", ("shell.consumer",)),
)
