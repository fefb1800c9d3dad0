"""A project's own task base (``Celery(task_cls=...)``) is kept under ``install()``: its
methods and its ``__call__`` wrap every job, as they wrap every task in plain Celery."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

import boundary_celery
from boundary_celery.core.status import JobStatus
from boundary_celery.shell.task import BoundaryTask
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
