"""A project's own task base is kept under ``install()`` however it is set
(``Celery(task_cls=...)``, ``app.Task = ...`` before or after install, ``base=``,
``shared_task(base=...)``): its methods and its ``__call__`` wrap every job, as they wrap
every task in plain Celery; a base that cannot be combined with BoundaryTask is refused by
name."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, Task, shared_task

import boundary_celery
from boundary_celery.core.status import JobStatus
from boundary_celery.shell.task import BoundaryTask
from boundary_celery.shell.task_base import TaskBaseConflict, boundary_base, describe
from boundary_celery.testing import Sandbox

SEEN: list[str] = []


class ContextTask(Task):
    """Like a Flask app-context task base: __call__ wraps the run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        SEEN.append(f"enter {self.name}")
        try:
            return self.run(*args, **kwargs)
        finally:
            SEEN.append("exit")

    def greeting(self) -> str:
        return "hello from the project's base"


def test_a_custom_task_base_keeps_its_call_and_methods(sandbox: Sandbox) -> None:
    app = Celery(f"base-{sandbox.prefix}", task_cls=ContextTask)
    jobs = boundary_celery.install(app, sandbox.settings())

    @app.task(shared=False, name="base.add")
    def add(x: int, y: int) -> int:
        SEEN.append("run")
        return x + y

    assert isinstance(add, BoundaryTask) and isinstance(add, ContextTask)
    assert add.greeting() == "hello from the project's base"
    SEEN.clear()
    result = add.apply((2, 3), queue=sandbox.queue("base"))  # runs here, as a worker would
    assert result.get() == 5
    assert SEEN == ["enter base.add", "run", "exit"]
    job = jobs.find_job(result.id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.result == 5


def _run_apply(app: Celery, jobs: Any, name: str, sandbox: Sandbox) -> None:
    """Define ``name`` on ``app``, run it here as a worker would, and check the job."""

    @app.task(shared=False, name=name)
    def add(x: int, y: int) -> int:
        SEEN.append("run")
        return x + y

    assert isinstance(add, BoundaryTask) and isinstance(add, ContextTask)
    SEEN.clear()
    result = add.apply((2, 3), queue=sandbox.queue("base"))
    assert result.get() == 5
    assert [f"enter {name}", "run", "exit"] == SEEN
    job = jobs.find_job(result.id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.result == 5


def test_app_task_assigned_before_install_is_kept(sandbox: Sandbox) -> None:
    app = Celery(f"before-{sandbox.prefix}")
    app.Task = ContextTask  # type: ignore[misc]  # Flask's Celery guide
    jobs = boundary_celery.install(app, sandbox.settings())
    assert issubclass(app.Task, BoundaryTask) and issubclass(app.Task, ContextTask)
    assert describe(app.Task) == "ContextTask + BoundaryTask"
    _run_apply(app, jobs, "before.add", sandbox)


def test_app_task_assigned_after_install_is_combined_at_creation(sandbox: Sandbox) -> None:
    app = Celery(f"after-{sandbox.prefix}")
    jobs = boundary_celery.install(app, sandbox.settings())
    app.Task = ContextTask  # type: ignore[misc]  # Flask-CeleryExt's order
    _run_apply(app, jobs, "after.add", sandbox)


def test_base_and_shared_task_base_are_combined(sandbox: Sandbox) -> None:
    app = Celery(f"basekw-{sandbox.prefix}")
    boundary_celery.install(app, sandbox.settings())

    @app.task(shared=False, name="basekw.one", base=ContextTask)
    def one() -> None:
        return None

    @shared_task(name=f"basekw.shared.{sandbox.prefix}", base=ContextTask)
    def shared() -> None:
        return None

    for task in (app.tasks["basekw.one"], app.tasks[f"basekw.shared.{sandbox.prefix}"]):
        assert isinstance(task, BoundaryTask) and isinstance(task, ContextTask)
        assert describe(type(task)) == "ContextTask + BoundaryTask"
    mro = type(app.tasks["basekw.one"]).__mro__
    assert mro.index(BoundaryTask) < mro.index(ContextTask)  # BoundaryTask's __call__ first


def test_the_same_base_is_combined_once() -> None:
    assert boundary_base(ContextTask) is boundary_base(ContextTask)
    assert boundary_base(BoundaryTask) is BoundaryTask


def _noop() -> None:
    return None


class NotATask:
    """A mixin that is not a celery.Task."""


class Sealed(Task):
    """A base that refuses to be combined with another package's task class."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if any(c.__module__.startswith("boundary_celery") for c in cls.__mro__):
            raise TypeError("Sealed tasks cannot be extended")
        super().__init_subclass__(**kwargs)


@pytest.mark.parametrize("how", ["task_cls", "app.Task"])
def test_a_base_that_is_not_a_task_is_refused_at_install(sandbox: Sandbox, how: str) -> None:
    app = (Celery(f"bad-{sandbox.prefix}", task_cls=NotATask) if how == "task_cls"
           else Celery(f"bad-{sandbox.prefix}"))
    if how == "app.Task":
        app.Task = NotATask  # type: ignore[misc]
    with pytest.raises(TaskBaseConflict, match="NotATask") as info:
        boundary_celery.install(app, sandbox.settings())
    assert info.value.setting == how and "celery.Task subclass" in str(info.value)
    assert getattr(app, "boundary", None) is None  # refused before anything changed
    assert app.conf.worker_consumer != "boundary_celery.shell.consumer:BoundaryConsumer"


def test_a_base_that_cannot_be_combined_is_refused_naming_it(sandbox: Sandbox) -> None:
    app = Celery(f"sealed-{sandbox.prefix}", task_cls=Sealed)
    with pytest.raises(TaskBaseConflict, match="Sealed") as info:
        boundary_celery.install(app, sandbox.settings())
    assert "cannot be combined with BoundaryTask" in str(info.value)


def test_a_bad_base_after_install_is_refused_when_the_task_is_created(sandbox: Sandbox) -> None:
    app = Celery(f"late-{sandbox.prefix}")
    boundary_celery.install(app, sandbox.settings())
    with pytest.raises(TaskBaseConflict, match="NotATask") as info:
        app.task(shared=False, name="late.one", base=NotATask, lazy=False)(_noop)
    assert info.value.setting == "base"
    app.Task = Sealed  # type: ignore[misc]
    with pytest.raises(TaskBaseConflict, match="Sealed") as info:
        app.task(shared=False, name="late.two", lazy=False)(_noop)
    assert info.value.setting == "app.Task"
