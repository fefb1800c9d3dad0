"""Every way a project sets its task base keeps its tasks jobs and its base's behaviour,
with a real worker of ``tests.e2e.task_base_app`` (a Flask-style application context).

Each mode publishes two jobs: one whose body needs the context (it completes, its result
is the context's name, ``after_return`` ran) and one that fails inside it (``on_failure``
saw the task's own exception, not "Working outside of application context").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from boundary_celery.core.status import JobStatus
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

#: task_base_app.CONTEXT_NAME (not imported: importing the app module here would add its
#: shared tasks to every app of the test process).
CONTEXT_NAME = "task-base-project"

MODES = ["task_cls", "assign_before", "assign_after", "base", "shared_task"]


def _hook(sandbox: Sandbox, hook: str, task_id: str) -> str | None:
    return sandbox.redis.get(f"{sandbox.prefix}:task-base:{hook}:{task_id}")


@pytest.mark.parametrize("mode", MODES)
def test_the_project_base_runs_around_every_job(
    mode: str, sandbox: Sandbox, make_jobs: Callable[..., Any],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    app, jobs = make_jobs()
    q = sandbox.queue("tb")
    worker = worker_factory([q], app_module="tests.e2e.task_base_app",
                            env={"TASK_BASE_MODE": mode})

    ok = app.send_task("task_base.whoami", queue=q).id
    bad = app.send_task("task_base.fail", queue=q).id

    def settled(job_id: str) -> Any:
        job = jobs.find_job(job_id)
        return job if job is not None and job.status in (
            JobStatus.COMPLETED, JobStatus.FAILED) else None

    done = wait_for(lambda: settled(ok), 30, message=f"{mode}: whoami settled\n"
                    + worker.log_text()[-3000:])
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.result == CONTEXT_NAME  # the body ran inside the base's context
    assert wait_for(lambda: _hook(sandbox, "after_return", ok), 10) == "SUCCESS"

    failed = wait_for(lambda: settled(bad), 30, message=f"{mode}: fail settled")
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "LookupError", failed.error
    assert wait_for(lambda: _hook(sandbox, "on_failure", bad), 10) == "LookupError"
    assert wait_for(lambda: _hook(sandbox, "after_return", bad), 10) == "FAILURE"
    assert "Working outside of application context" not in worker.log_text()
