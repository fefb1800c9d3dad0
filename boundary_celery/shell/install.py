"""``install(app)``: make every task of a Celery app a Boundary job; returns its ``Jobs``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from celery import signals
from kombu.utils.imports import symbol_by_name

from boundary_celery.adapters.redis_connect import same_tls, tls_options, uses_tls
from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.settings import BoundarySettings, RedisSettings, load_settings
from boundary_celery.shell import conf_policy, timeouts
from boundary_celery.shell.conf_policy import ConfigConflict
from boundary_celery.shell.context import TenantHook
from boundary_celery.shell.flower import transport_for
from boundary_celery.shell.installed import attach
from boundary_celery.shell.jobs import Jobs
from boundary_celery.shell.logfmt import event, set_format, tally
from boundary_celery.shell.publishing import BoundaryAMQP
from boundary_celery.shell.revoked import install_control  # connects task_revoked
from boundary_celery.shell.task import BoundaryTask
from boundary_celery.shell.task_base import boundary_base
from boundary_celery.shell.worker_step import WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("boundary_celery.worker")

REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")


def install(
    app: Celery,
    settings: BoundarySettings | None = None,
    *,
    tenant_hook: TenantHook | None = None,
) -> Jobs:
    """Make every task of ``app`` a Boundary job and return the app's :class:`Jobs`.

    The broker is the app's ``broker_url`` when set, else the settings' Redis URL; the
    job store lives in the same Redis database (its scripts touch both at once). Celery
    settings follow :mod:`~boundary_celery.shell.conf_policy`: a user's value is kept
    (with a warning where it weakens a guarantee) or refused by name. Only the broker's
    own wiring is boundary's (``broker_transport``, ``worker_consumer``, the transport's
    priority steps and key names); a different user value there is replaced with a warning.
    The app's default queue is kept; a worker started without ``-Q`` consumes every queue
    its job types declare. The project's own task base (``task_cls``, ``app.Task`` set
    before or after install(), ``base=``) is combined with BoundaryTask
    (:mod:`~boundary_celery.shell.task_base`); one that cannot be is refused by name.
    """
    settings = settings or load_settings()
    set_format(settings.logging.format)
    url = app.conf.broker_url or settings.redis.effective_url()
    scheme = urlparse(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ValueError(f"invalid broker_url: {url!r} (boundary-celery needs a Redis broker)")
    if app.conf.task_protocol != 2:
        raise ConfigConflict("task_protocol", app.conf.task_protocol,
                             "boundary-celery reads Celery's message protocol 2")
    conf_policy.refuse_broker_options(app.conf, url)
    task_base = _task_base(app)  # refused before anything changes
    notes = conf_policy.plan(app.conf, settings)
    user_options = dict(app.conf.broker_transport_options or {})
    master = _sentinel_master(url, user_options, settings.redis)
    tls, tls_notes = _broker_tls(app.conf, settings.redis, url)
    notes.extend(tls_notes)
    store = RedisJobStore(
        url,
        prefix=settings.store.key_prefix,
        completed_ttl_s=settings.store.completed_ttl_s,
        dlq_max_size=settings.store.dlq_max_size,
        dlq_max_age_days=settings.store.dlq_max_age_days,
        max_connections=settings.redis.max_total,
        socket_timeout_s=max(settings.redis.timeout_ms / 1000, 1.0),
        worker_window_ms=settings.workers.heartbeat_interval_s * 3 * 1000,
        tls=tls,  # the broker's TLS options: the store is in the same Redis
        sentinel_master=master,
    )
    lease_s = settings.workers.lease_s
    transport_options = {
        # Each delivery is held under a lease its worker renews every heartbeat; the
        # transport's sweep (every lease / 3 s) delivers again what a dead worker held.
        "unacked_restore_interval": max(1, lease_s // 3),
        "unacked_restore_throttle": 1,
        # The sweep's lock lives one interval (kombu's 300 s: a lock whose SET reached a
        # stalled Redis after its reply timed out blocked every sweep for 5 minutes). Two
        # sweeps at once are safe: restore_by_tag takes each entry in one MULTI/EXEC.
        "unacked_mutex_expire": max(1, lease_s // 3),
        **timeouts.transport_options(settings.redis.timeout_ms),  # bounded publishes
        **user_options,
        "visibility_timeout": lease_s,  # kombu's name for the lease (see transport.QoS)
        **store.broker_options(),  # the keys and priority lists are the store's
        "boundary_wait_replicas": settings.redis.wait_replicas,
        "boundary_wait_timeout_ms": settings.redis.wait_timeout_ms,
        "boundary_max_message_bytes": settings.store.max_message_bytes,
    }
    if master is not None:
        transport_options["master_name"] = master
    if settings.workers.visibility_timeout_s is not None:
        log.warning(event("Setting ignored", setting="workers.visibility_timeout_s",
                          reason="leases replaced the visibility timeout: see lease_s"))
    if "visibility_timeout" in user_options and user_options["visibility_timeout"] != lease_s:
        notes.append(conf_policy.ConfNote(
            "broker_transport_options.visibility_timeout", "replaced",
            user_options["visibility_timeout"],
            warning=f"leases replace it: a dead worker's jobs return after "
                    f"[workers] lease_s ({lease_s} s), a live worker's never"))
    notes.extend(conf_policy.wiring_notes(app.conf, store.broker_options()))
    conf_policy.apply(app.conf, notes)
    app.conf.update(
        broker_url=url,
        broker_transport=transport_for(url),
        broker_transport_options=transport_options,
        worker_consumer="boundary_celery.shell.consumer:BoundaryConsumer",
        **timeouts.celery_settings(app.conf, settings.redis.timeout_ms),
    )
    user_ssl = app.conf.broker_use_ssl
    if tls and not (isinstance(user_ssl, Mapping) and user_ssl):
        # kombu enables TLS by itself only for a transport literally named "rediss", and
        # its Redis transport reads only a non-empty dict (``True`` would connect without
        # TLS), so the settings' options fill in for those.
        app.conf.broker_use_ssl = tls
    _make_tasks_jobs(app, task_base)
    if WorkerRuntime not in app.steps["worker"]:
        app.steps["worker"].add(WorkerRuntime)
    jobs = Jobs(app, settings, store, tenant_hook=tenant_hook)
    jobs.conf_notes = notes
    attach(app, jobs)
    for note in notes:
        if note.warning:
            log.warning(event("Celery setting kept", setting=note.setting, value=note.value,
                              consequence=note.warning))
        else:
            log.debug(event("Celery setting", setting=note.setting, action=note.action,
                            value=note.value, previous=note.previous))
    return jobs


def _sentinel_master(url: str, user_options: Mapping[str, Any],
                     redis: RedisSettings) -> str | None:
    """The Sentinel master group of a ``sentinel://`` broker (the app's
    ``broker_transport_options["master_name"]``, else ``[redis] sentinel_master``); None
    for any other URL. ValueError when a Sentinel URL names no master."""
    if not url.startswith("sentinel://"):
        return None
    if redis.tls_requested:
        raise ValueError("TLS through Sentinel is not supported yet")
    master = user_options.get("master_name") or redis.sentinel_master
    if not master:
        raise ValueError("a sentinel:// broker needs the master's name: [redis] "
                         "sentinel_master or broker_transport_options['master_name']")
    return str(master)


def _broker_tls(
    conf: Any, redis: RedisSettings, url: str
) -> tuple[dict[str, Any], list[conf_policy.ConfNote]]:
    """The TLS options of the broker and the job store for ``url`` (none unless
    ``rediss://``), and the note about a ``broker_use_ssl`` the app set itself.

    The app's own dict is kept and used for the store as well (the same Redis, so the
    same CA and client certificate); when ``[redis] tls_*`` settings say otherwise, a
    warning says which one is used. Without one, the settings' options become
    ``broker_use_ssl``.
    """
    ours = tls_options(ca_file=redis.tls_ca_file, cert_file=redis.tls_cert_file,
                       key_file=redis.tls_key_file, verify=redis.tls_verify)
    if not uses_tls(url):
        if redis.tls_requested:
            log.warning(event("Setting ignored", setting="redis.tls_*",
                              reason=f"the broker URL is {urlparse(url).scheme}://, "
                                     "not rediss://"))
        return {}, []
    user = conf.broker_use_ssl
    if not isinstance(user, Mapping) or not user:
        return ours, []
    notes = []
    if redis.tls_requested and not same_tls(user, ours):
        shown = {key: "***" if "password" in str(key) else value for key, value in user.items()}
        notes.append(conf_policy.ConfNote(
            "broker_use_ssl", "kept", shown,
            warning="differs from the [redis] tls_* settings; the app's value is used "
                    "for the broker and the job store"))
    return dict(user), notes


def _task_base(app: Any) -> type[BoundaryTask]:
    """The app's task base under install(): BoundaryTask combined with the project's own
    (see :mod:`~boundary_celery.shell.task_base`); TaskBaseConflict names a base that
    cannot be combined."""
    setting, own = _project_base(app)
    return BoundaryTask if own is None else boundary_base(own, setting)


def _make_tasks_jobs(app: Celery, base: type[BoundaryTask]) -> None:
    """``base`` becomes the app's task base, its AMQP publishes jobs, its control records
    revokes on the jobs, and at finalize job types' aliases are registered and their
    queues join the consumed queues."""
    if symbol_by_name(app.task_cls) is not base:  # type: ignore[arg-type]
        app.task_cls = base  # type: ignore[assignment]
        app.__dict__.pop("Task", None)  # cached_property: rebuilt from task_cls
    _combine_on_creation(app)
    if not isinstance(app.amqp, BoundaryAMQP):
        app.amqp_cls = BoundaryAMQP  # type: ignore[assignment]
        app.__dict__.pop("amqp", None)
    install_control(app)
    if not getattr(app, "_boundary_queues_hooked", False):
        app.on_after_finalize.connect(_on_finalize, weak=False)
        app._boundary_queues_hooked = True  # type: ignore[attr-defined]
    if app.finalized:  # type: ignore[attr-defined]
        _on_finalize(app)


def _project_base(app: Any) -> tuple[str, Any]:
    """Where the app's own task base was set and the class (None: Celery's ``Task``).

    ``app.Task = X`` (Flask's Celery guide) stores ``X`` in the instance's ``__dict__``,
    where Celery also caches the class it builds from ``task_cls`` (``create_task_cls``:
    a subclass named ``Task`` holding ``_app``); an assigned class wins over ``task_cls``.
    """
    cached = app.__dict__.get("Task")
    if cached is not None and not (cached.__name__ == "Task" and "_app" in cached.__dict__):
        return "app.Task", cached
    cls = symbol_by_name(app.task_cls)
    if app._custom_task_cls_used or (isinstance(cls, type) and issubclass(cls, BoundaryTask)):
        return "task_cls", cls
    return "task_cls", None


def _combine_on_creation(app: Any) -> None:
    """Every task the app creates from now on derives from BoundaryTask: ``base=X``
    (``@app.task``, ``shared_task``) and an ``app.Task = X`` assigned after install() are
    combined when the task is created (Celery's ``_task_from_fun`` builds each task as a
    subclass of ``base or app.Task``). A task decorated before install() with its own
    ``base=`` and ``shared=False`` is not covered; ``boundary doctor`` reports it."""
    if "_task_from_fun" in app.__dict__:
        return
    create = app._task_from_fun

    def _task_from_fun(fun: Any, name: Any = None, base: Any = None, **options: Any) -> Any:
        setting = "base" if base is not None else "app.Task"
        return create(fun, name=name, base=boundary_base(base or app.Task, setting),
                      **options)

    app._task_from_fun = _task_from_fun


def _on_finalize(sender: Any = None, **_: Any) -> None:
    """Once every task is known: register job types' aliases and declare their queues."""
    if sender is None:
        return
    for task in list(sender.tasks.values()):
        for alias in getattr(task, "boundary_aliases", ()):
            sender.tasks[alias] = task
    _declare_job_queues(sender)


def _declare_job_queues(app: Any) -> None:
    """Unless the app lists its queues (``task_queues``), a worker without ``-Q`` also
    consumes every queue a job type declares and the ``[workers] queues``."""
    if app.conf.task_queues:
        return
    queues = app.amqp.queues
    names = [getattr(task, "boundary_queue", None) or getattr(task, "queue", None)
             for task in list(app.tasks.values())]
    names.extend(app.boundary.settings.workers.queues)
    selected = getattr(queues, "_consume_from", None)  # -Q given: the user chose
    default = getattr(queues, "_default_consume_from", None)  # Celery >= 5.7
    for name in names:
        if isinstance(name, str) and name not in queues:
            queue = queues.add(name)
            if selected is None and default is not None:
                default[queue.name] = queue


@signals.worker_ready.connect(weak=False)
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "boundary", None) is not None:
        log.info(event("Started worker", worker_id=sender.hostname,
                       queues=sorted(q.name for q in app.amqp.queues.consume_from.values())))


@signals.worker_shutdown.connect(weak=False)
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "boundary", None) is not None:
        log.info(event("Worker stopped", worker_id=getattr(sender, "hostname", None),
                       **tally()))
