"""A Flask-style project: its task base opens an "application context" around each run.

Flask is not a dependency, so the context is emulated as Flask does it: a context
variable that ``current_app()`` requires, raising "Working outside of application
context." outside it. ``TASK_BASE_MODE`` picks how the project sets its base:

- ``task_cls``: ``Celery(task_cls=ContextTask)`` (Flask's current guide);
- ``assign_before``: ``app.Task = ContextTask``, then ``install(app)``;
- ``assign_after``: ``install(app)``, then ``app.Task = ContextTask`` (Flask-CeleryExt's order);
- ``base``: ``@app.task(base=ContextTask)``;
- ``shared_task``: ``@shared_task(base=ContextTask)``.

The base's ``after_return`` and ``on_failure`` leave a key under the store prefix, so a
test sees that they ran in the worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
from celery import Celery, Task, shared_task

import boundary_celery

MODE = os.environ.get("TASK_BASE_MODE", "task_cls")
PREFIX = os.environ.get("BOUNDARY_STORE__KEY_PREFIX", "boundary")
CONTEXT_NAME = "task-base-project"

_app_context: ContextVar[str | None] = ContextVar("app_context", default=None)


@contextmanager
def app_context() -> Iterator[None]:
    token = _app_context.set(CONTEXT_NAME)
    try:
        yield
    finally:
        _app_context.reset(token)


def current_app() -> str:
    name = _app_context.get()
    if name is None:
        raise RuntimeError("Working outside of application context.")
    return name


def hook_key(hook: str, task_id: str) -> str:
    return f"{PREFIX}:task-base:{hook}:{task_id}"


def _note(hook: str, task_id: str, value: str) -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.set(hook_key(hook, task_id), value, ex=600)
    finally:
        client.close()


class ContextTask(Task):
    """Flask's guide: every run inside the application's context."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with app_context():
            return self.run(*args, **kwargs)

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        _note("after_return", task_id, status)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        _note("on_failure", task_id, type(exc).__name__)


app = Celery("task_base", task_cls=ContextTask) if MODE == "task_cls" else Celery("task_base")
if MODE == "assign_before":
    app.Task = ContextTask  # type: ignore[misc]
jobs = boundary_celery.install(app)
if MODE == "assign_after":
    app.Task = ContextTask  # type: ignore[misc]

OPTIONS: dict[str, Any] = {"base": ContextTask} if MODE in ("base", "shared_task") else {}
task = shared_task if MODE == "shared_task" else app.task


@task(name="task_base.whoami", **OPTIONS)
def whoami() -> str:
    return current_app()


@task(name="task_base.fail", **OPTIONS)
def fail() -> None:
    current_app()
    raise LookupError("failed inside the application context")
