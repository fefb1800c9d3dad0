"""An existing Celery project (``tests/compat/proj``, in the shape of Celery's next-steps
example) whose only change is ``boundary_celery.install(app)``, run as its README says:
``celery -A proj worker`` (no ``-Q``, no tuning: the shipped defaults)."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery, chain, chord, group

from boundary_celery.core.status import JobStatus
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
ENV_KEYS = ("REDIS_URL", "BOUNDARY_STORE__KEY_PREFIX", "PROJ_MARK_PREFIX", "PROJ_QUEUE")


@pytest.fixture(scope="module")
def proj(redis_url: str) -> Iterator[SimpleNamespace]:
    """The project imported as a user's publisher would, on a private key prefix."""
    box = Sandbox(url=redis_url)
    queue = box.queue("celery")  # the project's default queue, this run's own
    values = {"REDIS_URL": redis_url, "BOUNDARY_STORE__KEY_PREFIX": box.prefix,
              "PROJ_MARK_PREFIX": box.prefix, "PROJ_QUEUE": queue}
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    boundary_env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("BOUNDARY_")}
    os.environ.update(values)
    sys.path.insert(0, str(HERE))
    try:
        app_module = importlib.import_module("proj.celery")
        tasks = importlib.import_module("proj.tasks")
        app = app_module.app
        app.loader.import_default_modules()
        env = {k: v for k, v in os.environ.items()}
        env["PYTHONUNBUFFERED"] = "1"
        yield SimpleNamespace(box=box, app=app, jobs=app.boundary, tasks=tasks, env=env,
                              redis=box.redis, queue=queue)
    finally:
        r = box.redis
        doomed = list(r.scan_iter(f"{box.prefix}:*"))
        doomed += [f"celery-task-meta-{jid}" for jid in _published]
        for start in range(0, len(doomed), 500):
            r.delete(*doomed[start : start + 500])
        box.cleanup()
        sys.path.remove(str(HERE))
        for name in [m for m in sys.modules if m == "proj" or m.startswith("proj.")]:
            del sys.modules[name]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.update(boundary_env)


_published: list[str] = []


def track(result: Any) -> Any:
    """Remember a result id (its backend key is deleted at the end)."""
    node = result
    while node is not None:
        _published.append(node.id)
        for child in getattr(node, "results", None) or ():
            _published.append(child.id)
        node = getattr(node, "parent", None)
    return result


def start_worker(proj: SimpleNamespace) -> WorkerProcess:
    """``celery -A proj worker -l info``: no -Q, no -c, no -P (plus a node name)."""
    worker = WorkerProcess("proj", proj.env, [], concurrency=None, pool=None, cwd=HERE)
    return worker.start().wait_ready(60)


@pytest.fixture(scope="module")
def worker(proj: SimpleNamespace) -> Iterator[WorkerProcess]:
    w = start_worker(proj)
    yield w
    w.stop()


def test_delay_get_and_a_record_for_a_plain_task(proj: SimpleNamespace,
                                                  worker: WorkerProcess) -> None:
    res = track(proj.tasks.add.delay(2, 2))
    assert res.get(timeout=30) == 4
    job = wait_for(lambda: _done(proj, res.id), 10, message="add's record completed")
    assert (job.job_type, job.result, job.args) == ("proj.tasks.add", 4, {"x": 2, "y": 2})
    assert job.queue == proj.queue and job.priority.value == "normal"


def test_boundary_doctor_audits_the_project(proj: SimpleNamespace, worker: WorkerProcess) -> None:
    cmd = [sys.executable, "-m", "celery", "-A", "proj", "boundary", "doctor", "--json"]
    out = subprocess.run(cmd, cwd=HERE, env=proj.env, capture_output=True, text=True,
                         timeout=120)
    report = json.loads(out.stdout)
    assert (out.returncode, report["errors"], report["warnings"]) == (0, 0, 0), report
    said = {(f["check"], f["subject"]) for f in report["findings"]}
    assert ("settings", "task_acks_late") in said  # what install() changed, said once
    assert any(check == "retries" and subject == "proj.tasks.flaky" for check, subject in said)


def test_chain_group_and_chord_across_plain_tasks_and_a_boundary_job(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    t = proj.tasks
    assert track(chain(t.add.s(2, 2), t.mul.s(8), t.double.s())()).get(timeout=30) == 64
    assert track(group(t.add.s(i, i) for i in range(10))()).get(timeout=30) == [
        2 * i for i in range(10)]
    assert track(chord((t.add.s(i, i) for i in range(10)), t.xsum.s())()).get(
        timeout=30) == 90


def test_a_converted_boundary_job_keeps_its_name_and_returns_a_result(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    double = proj.tasks.double
    assert double.name == "proj.tasks.double"
    res = track(double.delay(21))
    assert res.get(timeout=30) == 42
    job = wait_for(lambda: _done(proj, res.id), 10, message="double's record completed")
    assert job.priority.value == "high" and job.result == 42


def test_countdown_waits_in_the_scheduler_not_as_a_celery_eta(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    res = track(proj.tasks.add.apply_async((1, 2), countdown=2))
    job = proj.jobs.find_job(res.id)
    assert job.status is JobStatus.SCHEDULED
    assert res.id in {e.id for e in proj.jobs.scheduled_jobs(100)}
    assert res.get(timeout=30) == 3
    done = wait_for(lambda: _done(proj, res.id), 10, message="record completed")
    # Celery turns the countdown into an eta from its clock just before the record is
    # made (1.997 s before started_at was seen under load): the due time is the eta.
    assert 1.9 <= (job.execute_at - job.created_at).total_seconds() <= 2.01  # ms records
    assert done.started_at >= job.execute_at


def test_celery_retry_options_give_celerys_attempts_and_delays_then_the_dlq(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    res = track(proj.tasks.flaky.delay("flaky-a"))
    with pytest.raises(proj.tasks.FlakyError):
        res.get(timeout=60, propagate=True)
    times = [float(t) for t in proj.redis.lrange(f"{proj.box.prefix}:flaky-a", 0, -1)]
    assert len(times) == 4  # the first attempt and retry_kwargs' max_retries=3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, (1, 2, 4), strict=True):  # retry_backoff=1: 1, 2, 4 s
        assert expected - 0.05 <= gap <= expected + 0.6, gaps  # the scheduler is on time
    job = wait_for(lambda: _failed(proj, res.id), 10, message="flaky dead-lettered")
    assert job.error is not None and job.error.type == "FlakyError"
    assert job.retry_count == 4  # decisions.md: a final failure counts as retry_count + 1
    assert res.id in {str(j.id) for j in proj.jobs.failed_jobs(50)}
    assert proj.jobs.queue_stats(proj.queue).retried_total >= 3


def test_self_retry_with_countdown(proj: SimpleNamespace, worker: WorkerProcess) -> None:
    res = track(proj.tasks.patient.delay("patient-a", 3))
    assert res.get(timeout=60) == 3
    job = wait_for(lambda: _done(proj, res.id), 10, message="patient's record completed")
    assert job.retry_count == 2


def test_self_retry_keeps_the_custom_headers_of_the_call(proj: SimpleNamespace,
                                                        worker: WorkerProcess) -> None:
    # Celery's t/integration test_task_retried_headers: the job header must join the
    # request's custom headers, not replace them.
    res = track(proj.tasks.retried_header.apply_async(
        ("x-proj-header",), headers={"x-proj-header": "kept"}))
    assert res.get(timeout=60) == "kept"


@pytest.mark.parametrize("given", [7, 3])
def test_the_priority_integer_given_is_the_one_celery_reports(proj: SimpleNamespace,
                                                              worker: WorkerProcess,
                                                              given: int) -> None:
    # Celery's test_task_retried_priority: 7 came back as 6 (the level's own integer).
    res = track(proj.tasks.retried_priority.apply_async(priority=given))
    assert res.get(timeout=60) == [given, given]
    job = wait_for(lambda: _done(proj, res.id), 10, message="the record completed")
    assert job.priority.celery == given - given % 2  # the level is the pair's


def test_a_declared_queue_is_consumed_without_q_and_an_alias_keeps_old_messages_running(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    res = track(proj.tasks.notify.delay("a@b.c"))
    assert res.get(timeout=30) == "sent to a@b.c"
    assert proj.jobs.find_job(res.id).queue == "proj-emails"
    old = track(proj.app.send_task("proj.tasks.old_notify", args=("old@b.c",),
                                   queue="proj-emails"))
    assert old.get(timeout=30) == "sent to old@b.c"


def test_an_unmigrated_producer_is_consumed_and_migrate_lists_frees_its_priorities(
        proj: SimpleNamespace, worker: WorkerProcess) -> None:
    """A producer still on plain Celery (kombu's default priority steps 0, 3, 6, 9) during
    a rolling deploy: its unprioritized messages are consumed; `boundary migrate-lists`
    moves the prioritized ones to their levels, in order."""
    legacy = Celery("legacy-producer", broker=proj.env["REDIS_URL"],
                    backend=proj.env["REDIS_URL"])
    legacy.conf.task_default_queue = proj.queue
    try:
        plain = track(legacy.send_task("proj.tasks.add", args=(40, 2)))
        assert plain.get(timeout=30) == 42
        assert _done(proj, plain.id) is not None  # recorded when it started
        worker.stop()
        stranded = [track(legacy.send_task("proj.tasks.add", args=(i, i), priority=p))
                    for i, p in enumerate((5, 9, 3))]
        assert proj.jobs.store.legacy_depths([proj.queue]) == {proj.queue: 3}
        run_cli = [sys.executable, "-m", "celery", "-A", "proj", "boundary",
                   "migrate-lists", "--json"]
        out = subprocess.run(run_cli, cwd=HERE, env=proj.env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["moved"] == 3
        assert proj.jobs.queue_sizes_by_priority(proj.queue) == {
            "critical": 0, "high": 1, "normal": 1, "low": 0, "bulk": 1}
        again = start_worker(proj)
        try:
            assert [r.get(timeout=30) for r in stranded] == [0, 2, 4]
        finally:
            again.stop()
    finally:
        legacy.close()


def test_plain_priorities_run_in_the_documented_order(proj: SimpleNamespace,
                                                      worker: WorkerProcess) -> None:
    worker.stop()
    record = proj.tasks.record
    for tag, priority in (("p9", 9), ("unset", None), ("p5", 5), ("p2", 2), ("p0", 0)):
        track(record.apply_async((tag,), priority=priority))
    second = start_worker(proj)
    try:
        key = f"{proj.box.prefix}:order"
        wait_for(lambda: proj.redis.llen(key) == 5, 30, message="five recorded runs")
        order = _received_tags(proj, second)  # the order the consumer took them in
        # 0-1 critical, 2-3 high, unset and 4-5 normal (FIFO), 6-7 low, 8-9 bulk
        assert order == ["p0", "p2", "unset", "p5", "p9"]
    finally:
        second.stop()


def _received_tags(proj: SimpleNamespace, worker: WorkerProcess) -> list[str]:
    ids = [line.split("Task proj.tasks.record[", 1)[1].split("]", 1)[0]
           for line in worker.log_text().splitlines()
           if "Task proj.tasks.record[" in line and "received" in line]
    return [proj.jobs.find_job(jid).args["tag"] for jid in ids]


def _done(proj: SimpleNamespace, job_id: str) -> Any:
    job = proj.jobs.find_job(job_id)
    return job if job is not None and job.status is JobStatus.COMPLETED else None


def _failed(proj: SimpleNamespace, job_id: str) -> Any:
    job = proj.jobs.find_job(job_id)
    return job if job is not None and job.status is JobStatus.FAILED else None
