"""``celery -A app boundary doctor``: what install() changed in a Celery app and what still
stands between it and Boundary's guarantees, as a list of findings."""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import RedisError

from boundary_celery.core.retry import calculate_retry_delay
from boundary_celery.shell.defaults import task_max_retries
from boundary_celery.shell.install import REDIS_SCHEMES
from boundary_celery.shell.task import BoundaryTask
from boundary_celery.shell.task_base import describe

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

SEVERITIES = ("error", "warning", "info")
#: Celery's own defaults of the retry options a task may set.
CELERY_RETRY_DEFAULTS: dict[str, Any] = {
    "retry_backoff": False, "retry_backoff_max": 600, "retry_jitter": True,
    "retry_kwargs": {}, "max_retries": 3, "default_retry_delay": 180,
}
CANVAS = {"group", "chord", "chain", "chunks", "signature"}  # imported from celery
SHOWN_DELAYS = 5


@dataclass(frozen=True)
class Finding:
    """One finding: ``severity`` is ``error``, ``warning`` or ``info``; ``check`` names the
    check, ``subject`` what it is about (a setting, task, module or queue)."""

    severity: str
    check: str
    subject: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def audit(app: Any) -> list[Finding]:
    """Every finding for ``app``, errors first. Imports the app's task modules (as a worker
    does). Only when install() was called does it read Redis and, if Redis answers, ask
    the workers which queues they consume (waiting 1 s for replies)."""
    jobs: Jobs | None = getattr(app, "boundary", None)
    found = [*_install(app, jobs), *_settings(jobs)]
    tasks, failure = load_tasks(app)
    if failure:
        found.append(Finding("error", "tasks", "imports", failure))
    app_base = describe(app.Task)
    if jobs is not None:
        found.append(Finding("info", "task base", str(app.main or "app"), _base_detail(app_base)))
    bodies: dict[str, set[str]] = {}
    for module in sorted({t.__module__ for t in tasks}):
        found += _module(app, module, bodies)
    for task in tasks:
        run = getattr(task, "__wrapped__", None) or task.run  # the decorated function
        found += _task(task, jobs, bodies.get(f"{task.__module__}:{run.__name__}", set()))
        own = describe(type(task))
        if jobs is not None and isinstance(task, BoundaryTask) and own != app_base:
            found.append(Finding("info", "task base", str(task.name), _base_detail(own)))
    if jobs is not None:
        queues = declared_queues(app, tasks)
        redis_found, reachable = _redis(app, jobs, queues)
        found += redis_found + (_workers(app, queues) if reachable else [])
    return sorted(found, key=lambda f: SEVERITIES.index(f.severity))


def load_tasks(app: Any) -> tuple[list[Any], str | None]:
    """The app's tasks (not Celery's own, aliases once, by name) after importing its task
    modules, and the import failure if one happened."""
    failure = None
    try:
        app.loader.import_default_modules()
    except Exception as exc:  # any error importing the user's modules is the finding
        failure = f"importing the app's task modules failed: {exc!r}"
    unique = {id(t): t for name, t in sorted(app.tasks.items()) if not name.startswith("celery.")}
    return sorted(unique.values(), key=lambda t: str(t.name)), failure


def declared_queues(app: Any, tasks: list[Any]) -> list[str]:
    """The app's default queue and every queue a task declares."""
    names = {app.conf.task_default_queue}
    names |= {getattr(t, "boundary_queue", None) or getattr(t, "queue", None) for t in tasks}
    return sorted(n for n in names if isinstance(n, str) and n)


def known_queues(app: Any) -> list[str]:
    """:func:`declared_queues` and every queue the job store has seen (reads Redis)."""
    tasks, _ = load_tasks(app)
    return sorted(set(declared_queues(app, tasks)) | set(app.boundary.store.list_queues()))


def _install(app: Any, jobs: Jobs | None) -> Iterator[Finding]:
    url = app.conf.broker_url
    if jobs is None:
        yield Finding("error", "install", str(app.main or "app"),
                      "boundary_celery.install(app) was not called: tasks are plain Celery "
                      "tasks and no job is recorded")
    if url and urlparse(str(url)).scheme not in REDIS_SCHEMES:
        yield Finding("error", "install", "broker_url",
                      f"{maybe_sanitize_url(url)} is not Redis: boundary-celery needs a "
                      "redis://, rediss://, unix:// or sentinel:// broker")


def _base_detail(base: str) -> str:
    """``ContextTask + BoundaryTask: ...`` for a ``task base`` finding."""
    if base == "BoundaryTask":
        return "BoundaryTask (no project base)"
    return (f"{base}: every task is a job, and the project base's __call__ and hooks "
            "(on_failure, after_return, ...) run as in Celery")


def _settings(jobs: Jobs | None) -> Iterator[Finding]:
    for note in jobs.conf_notes if jobs is not None else ():
        value = f"{note.setting}={note.value!r}"
        if note.action == "set":
            yield Finding("info", "settings", note.setting,
                          f"install() set {value} (Celery default was {note.previous!r})")
        elif note.action == "replaced":
            yield Finding("warning", "settings", note.setting,
                          f"your {value} is replaced: {note.warning}")
        else:
            yield Finding("warning" if note.warning else "info", "settings", note.setting,
                          f"your {value} is kept" + (f": {note.warning}" if note.warning else ""))


def _task(task: Any, jobs: Jobs | None, calls: set[str]) -> Iterator[Finding]:
    name = str(task.name)
    if jobs is not None and not isinstance(task, BoundaryTask):
        bases = ", ".join(b.__name__ for b in type(task).__bases__)
        yield Finding("error", "task", name,
                      f"not a job: its base ({bases}) does not derive from BoundaryTask (a "
                      "task created before install(): on an app already finalized, or "
                      "decorated with base= and shared=False; or a class registered with "
                      "register_task): its runs are not recorded (the record written at "
                      "publish stays pending)")
    celery = _celery_retries(task, "retry" in calls)
    if getattr(task, "boundary_declared", False):
        yield Finding("info", "retries", name, _boundary_retries(task, jobs))
        if getattr(task, "autoretry_for", None):
            yield Finding("warning", "retries", name,
                          f"{celery}; the job type also has a Boundary retry policy: "
                          "Celery's options win for the exceptions they cover")
    elif celery:
        yield Finding("info", "retries", name, celery)
    hard, soft = getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None)
    if hard:
        yield Finding("info", "time limit", name,
                      f"time_limit={hard}: a hard time limit kills the attempt, recorded as a "
                      "TimeLimitExceeded failure (retried by a declared job type's policy, "
                      "else dead-lettered)")
    if soft:
        yield Finding("info", "time limit", name,
                      f"soft_time_limit={soft}: raises SoftTimeLimitExceeded in the task, "
                      "recorded as a failure like any exception")
    if "get" in calls:
        backend = "" if task.app.conf.result_backend else " (and no result_backend is set)"
        yield Finding("warning", "canvas", name,
                      f"calls .get() on a result inside the task{backend}: it blocks a worker "
                      "process while it waits and can deadlock a busy pool")


def _secs(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds * 1000:g} ms" if 0 < seconds < 1 else f"{seconds:g} s"


def _attempts(limit: int | None, delays: list[float], prefix: str = "") -> str:
    """``up to N attempts, delays 1 s, 2 s, ...`` (the first few delays)."""
    if limit == 0:
        return "1 attempt, no retry; then the DLQ"
    count = SHOWN_DELAYS if limit is None else min(limit, SHOWN_DELAYS)
    shown = ", ".join(_secs(d) for d in delays[:count])
    more = ", ..." if limit is None or limit > SHOWN_DELAYS else ""
    return (f"{'unlimited attempts' if limit is None else f'up to {limit + 1} attempts'}, "
            f"delays {prefix}{shown}{more}, waiting in the boundary scheduler; then the DLQ")


def _celery_retries(task: Any, calls_retry: bool) -> str | None:
    """What the task's Celery retry options become, or None when it has none."""
    autoretry = getattr(task, "autoretry_for", None) or ()
    autoretry = autoretry if isinstance(autoretry, tuple | list) else (autoretry,)
    opts = {k: getattr(task, k, d) for k, d in CELERY_RETRY_DEFAULTS.items()}
    changed = [f"{k}={v!r}" for k, v in opts.items() if v != CELERY_RETRY_DEFAULTS[k]]
    if not autoretry and not changed and not calls_retry:
        return None
    kinds = ", ".join(getattr(e, "__name__", str(e)) for e in autoretry)
    kinds += "," if len(autoretry) == 1 else ""
    label = ", ".join(([f"autoretry_for=({kinds})"] if autoretry else []) + changed)
    kwargs = dict(opts["retry_kwargs"] or {})
    limit = kwargs.get("max_retries", opts["max_retries"])
    if not autoretry:
        return (f"{label or 'self.retry()'}: no automatic retries; self.retry() allows "
                f"{'unlimited' if limit is None else limit} retries (its countdown, else "
                f"{_secs(opts['default_retry_delay'])}), waiting in the boundary scheduler; "
                "then the DLQ")
    backoff = float(opts["retry_backoff"] or 0)
    factor, cap = int(max(1.0, backoff)), int(opts["retry_backoff_max"])
    delays = [float(min(cap, factor * 2**r)) if backoff
              else float(kwargs.get("countdown", opts["default_retry_delay"]))
              for r in range(SHOWN_DELAYS)]
    jitter = "up to " if backoff and opts["retry_jitter"] else ""
    return f"{label}: {_attempts(limit, delays, jitter)}"


def _boundary_retries(task: Any, jobs: Jobs | None) -> str:
    """What a declared job type's Boundary retry policy does."""
    if jobs is None:
        return "declared job type: its Boundary retry policy applies once install() is called"
    own = getattr(task, "boundary_retry_policy", None)
    policy = own or jobs.default_policy
    limit = task_max_retries(task, jobs.settings.retry.max_retries)
    delays = [calculate_retry_delay(k, policy, lambda: 0.0) / 1000 for k in range(limit)]
    source = "its retry_policy" if own is not None else "the [retry] settings"
    jitter = " plus jitter" if policy.jitter else ""
    return (f"Boundary retry policy ({source}{jitter}) for retryable errors: "
            f"{_attempts(limit, delays)}")


def _module(app: Any, name: str, bodies: dict[str, set[str]]) -> Iterator[Finding]:
    """Canvas in module ``name`` (one finding); records the ``.get()`` / ``.retry()``
    calls of each of its functions in ``bodies`` (``module:function``)."""
    try:
        tree = ast.parse(inspect.getsource(sys.modules[name]))
    except (KeyError, OSError, TypeError, SyntaxError):
        return
    imported = {a.asname or a.name: a.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] == "celery"
                for a in node.names if a.name in CANVAS}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            calls = bodies.setdefault(f"{name}:{node.name}", set())
            calls |= {c.func.attr for c in ast.walk(node) if isinstance(c, ast.Call)
                      and isinstance(c.func, ast.Attribute)
                      and (c.func.attr == "retry" or (c.func.attr == "get" and not c.args))}
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in imported:
            used.add(imported[func.id])
        elif isinstance(func, ast.Attribute) and func.attr in ("s", "si"):
            used.add("signature")
    if not used:
        return
    kinds = ", ".join(sorted(used))
    if app.conf.result_backend:
        yield Finding("info", "canvas", name, f"uses {kinds}: Celery canvas works unchanged "
                      "(each task in it is a job)")
    elif "chord" in used:
        yield Finding("error", "canvas", name, f"uses {kinds} with no result_backend: a "
                      "chord cannot run without one")
    else:
        yield Finding("warning", "canvas", name, f"uses {kinds} with no result_backend: "
                      "their results cannot be read (and a group followed by a task is a chord)")


def _redis(app: Any, jobs: Jobs, queues: list[str]) -> tuple[list[Finding], bool]:
    """Legacy list messages and Celery eta messages; ``(findings, Redis answered)``."""
    store = jobs.store
    try:
        depths = store.legacy_depths(sorted(set(queues) | set(store.list_queues())))
        held = store.eta_messages()
    except (RedisError, OSError) as exc:
        url = maybe_sanitize_url(app.conf.broker_url or "")
        return [Finding("warning", "redis", str(url), f"Redis unavailable: {exc}")], False
    found = [Finding("warning", "legacy lists", queue,
                     f"{n} messages in kombu's default priority lists, which no boundary "
                     "worker reads; run `celery -A app boundary migrate-lists`")
             for queue, n in sorted(depths.items()) if n > 0]
    if held:
        found.append(Finding("warning", "eta", "workers",
                             f"{held} messages with a Celery eta are held in worker memory "
                             "(published without boundary-celery): they wait outside the "
                             "boundary scheduler"))
    return found, True


def _workers(app: Any, queues: list[str]) -> list[Finding]:
    """Declared queues no answering worker consumes."""
    try:
        replies = app.control.inspect(timeout=1.0).active_queues()
    except (OperationalError, RedisError, OSError) as exc:
        return [Finding("info", "workers", "-", f"workers not asked: {exc}")]
    if not replies:
        return [Finding("info", "workers", "-", "no worker answered: queues not checked")]
    consumed = {q.get("name") for answer in replies.values() for q in answer or ()}
    return [Finding("warning", "workers", queue,
                    f"no worker consumes this queue ({len(replies)} answered): its jobs wait "
                    "until one does") for queue in queues if queue not in consumed]
