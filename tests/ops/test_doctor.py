"""``boundary doctor`` and ``boundary migrate-lists``: ``audit()`` on small Celery apps
installed on a sandbox (real Redis), and the CLI as a real ``celery -A`` subprocess."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from celery import Celery, Task
from click.testing import CliRunner

import boundary_celery
from boundary_celery.cli import boundary
from boundary_celery.shell.doctor import Finding, audit
from boundary_celery.testing import Sandbox
from tests.conftest import ROOT

SEP = "\x06\x16"
#: Checks about one task or module: other test modules' shared tasks join every app in
#: this process, so the assertions look only at this module's own tasks (which are all
#: ``shared=False``, so they join no other app).
TASK_CHECKS = {"task", "retries", "time limit", "canvas"}


class ContextBase(Task):
    """A project's own task base (e.g. one opening an application context)."""


def new_app(sandbox: Sandbox, **conf: Any) -> Celery:
    """An app on the sandbox: its own default queue, and a control exchange no worker
    listens on (so no other test's worker answers the doctor)."""
    app = Celery(f"doctor-{uuid.uuid4().hex[:8]}")
    app.conf.update(task_default_queue=sandbox.queue("default"),
                    control_exchange=f"{sandbox.prefix}-control", **conf)
    return app


def install(app: Celery, sandbox: Sandbox) -> Celery:
    boundary_celery.install(app, sandbox.settings())
    return app


def own(findings: list[Finding], *severities: str) -> list[Finding]:
    """Findings of these severities, minus those about tasks from other test modules."""
    return [f for f in findings if f.severity in severities
            and (f.check not in TASK_CHECKS or f.subject.startswith(("doctor.", __name__)))]


def about(findings: list[Finding], subject: str) -> list[tuple[str, str, str]]:
    return [(f.severity, f.check, f.detail) for f in findings if f.subject == subject]


def test_a_clean_app_has_no_warning_or_error(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox), sandbox)

    @app.task(shared=False, name="doctor.clean")
    def clean_task(x: int) -> int:
        return x

    findings = audit(app)
    assert own(findings, "error", "warning") == []
    infos = {(f.check, f.subject): f.detail for f in findings}
    assert infos[("settings", "worker_prefetch_multiplier")] == (
        "install() set worker_prefetch_multiplier=1 (Celery default was 4)")
    assert infos[("workers", "-")] == "no worker answered: queues not checked"
    assert about(findings, "doctor.clean") == []  # plain task, Celery's defaults: nothing
    assert [f.severity for f in findings] == sorted(
        (f.severity for f in findings), key=("error", "warning", "info").index)
    assert Finding("info", "a", "b", "c").to_dict() == {
        "severity": "info", "check": "a", "subject": "b", "detail": "c"}


def test_an_app_without_install_or_redis_broker(sandbox: Sandbox) -> None:
    app = new_app(sandbox, broker_url="amqp://guest:secret@localhost//")

    @app.task(shared=False, name="doctor.plain")
    def plain_task() -> None:
        return None

    findings = audit(app)
    assert [(f.check, f.subject) for f in own(findings, "error")] == [
        ("install", app.main), ("install", "broker_url")]
    assert "secret" not in json.dumps([f.to_dict() for f in findings])
    assert not any(f.check in ("redis", "workers") for f in findings)  # not asked


def test_a_custom_base_is_combined_and_shown(sandbox: Sandbox) -> None:
    app = new_app(sandbox)
    app.Task = ContextBase  # type: ignore[misc]  # before install(), as in Flask's guide
    install(app, sandbox)

    class PlainBase(Task):
        abstract = True

    @app.task(shared=False, name="doctor.custom", base=PlainBase)
    def custom_task() -> None:
        return None

    @app.task(shared=False, name="doctor.fine")
    def fine_task() -> None:
        return None

    findings = audit(app)
    assert about(findings, app.main)[0][:2] == ("info", "task base")
    assert about(findings, app.main)[0][2].startswith("ContextBase + BoundaryTask: every task")
    ((severity, check, detail),) = about(findings, "doctor.custom")
    assert (severity, check) == ("info", "task base")
    assert detail.startswith("PlainBase + BoundaryTask")
    assert about(findings, "doctor.fine") == []  # the app's base: not repeated
    assert own(findings, "error", "warning") == []


def test_the_default_base_is_shown(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox), sandbox)
    assert about(audit(app), app.main) == [
        ("info", "task base", "BoundaryTask (no project base)")]


def test_a_task_class_registered_by_hand_is_not_a_job(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox), sandbox)

    class PlainTask(Task):
        name = "doctor.registered"

        def run(self) -> None:
            return None

    app.register_task(PlainTask())
    findings = audit(app)
    ((severity, check, detail),) = about(findings, "doctor.registered")
    assert (severity, check) == ("error", "task")
    assert detail.startswith("not a job: its base (Task) does not derive from BoundaryTask")


def test_retry_options_say_what_they_become(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox), sandbox)

    @app.task(shared=False, name="doctor.auto", autoretry_for=(ValueError,), retry_backoff=1,
              retry_jitter=False)
    def auto_task() -> None:
        return None

    @app.task(shared=False, name="doctor.jittered", autoretry_for=(KeyError, OSError),
              retry_backoff=True, retry_kwargs={"max_retries": 7})
    def jittered_task() -> None:
        return None

    @app.task(shared=False, name="doctor.manual", bind=True, max_retries=5)
    def manual_task(self: Any) -> None:
        return None

    @app.task(shared=False, name="doctor.declared",
              boundary={"max_retries": 3,
                        "retry_policy": {"initial_delay_ms": 500, "max_delay_ms": 5000}})
    def declared_task() -> None:
        return None

    @app.task(shared=False, name="doctor.both", autoretry_for=(ValueError,),
              boundary={"retry_policy": "reference"})
    def both_task() -> None:
        return None

    @app.task(shared=False, name="doctor.limited", time_limit=30, soft_time_limit=20)
    def limited_task() -> None:
        return None

    findings = audit(app)
    assert about(findings, "doctor.auto") == [(
        "info", "retries",
        "autoretry_for=(ValueError,), retry_backoff=1, retry_jitter=False: up to 4 attempts, "
        "delays 1 s, 2 s, 4 s, waiting in the boundary scheduler; then the DLQ")]
    ((_, _, jittered),) = about(findings, "doctor.jittered")
    assert jittered == (
        "autoretry_for=(KeyError, OSError), retry_backoff=True, retry_kwargs={'max_retries': 7}: "
        "up to 8 attempts, delays up to 1 s, 2 s, 4 s, 8 s, 16 s, ..., waiting in the boundary "
        "scheduler; then the DLQ")
    assert about(findings, "doctor.manual") == [(
        "info", "retries",
        "max_retries=5: no automatic retries; self.retry() allows 5 retries (its countdown, "
        "else 3 min), waiting in the boundary scheduler; then the DLQ")]
    assert about(findings, "doctor.declared") == [(
        "info", "retries",
        "Boundary retry policy (its retry_policy) for retryable errors: up to 4 attempts, "
        "delays 500 ms, 1 s, 2 s, waiting in the boundary scheduler; then the DLQ")]
    both = about(findings, "doctor.both")
    assert both[0] == (
        "warning", "retries",
        "autoretry_for=(ValueError,): up to 4 attempts, delays 3 min, 3 min, 3 min, waiting "
        "in the boundary scheduler; then the DLQ; the job type also has a Boundary retry "
        "policy: Celery's options win for the exceptions they cover")
    assert both[1][:2] == ("info", "retries") and "0 s, 30 s, 5 min" in both[1][2]
    limited = about(findings, "doctor.limited")
    assert limited[0] == (
        "info", "time limit",
        "time_limit=30: a hard time limit kills the attempt, recorded as a TimeLimitExceeded "
        "failure (retried by a declared job type's policy, else dead-lettered)")
    assert limited[1][:2] == ("info", "time limit")


def test_a_kept_setting_that_weakens_a_guarantee_warns(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox, worker_prefetch_multiplier=8, worker_concurrency=2), sandbox)
    findings = audit(app)
    ((severity, check, detail),) = about(findings, "worker_prefetch_multiplier")
    assert (severity, check) == ("warning", "settings")
    assert detail.startswith("your worker_prefetch_multiplier=8 is kept: a worker holds")
    assert about(findings, "worker_concurrency") == [
        ("info", "settings", "your worker_concurrency=2 is kept")]


@pytest.fixture
def module_factory(tmp_path: Path) -> Iterator[Any]:
    """Write a task module to a temporary directory and import it (removed afterwards)."""
    names: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(source: str) -> ModuleType:
        name = f"doctor_mod_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return importlib.import_module(name)

    yield make
    sys.path.remove(str(tmp_path))
    for name in names:
        sys.modules.pop(name, None)


CANVAS_SOURCE = """
    from celery import chord, group as celery_group

    def register(app):
        @app.task(shared=False, name="canvas.total")
        def total(numbers):
            return sum(numbers)

        @app.task(shared=False, name="canvas.waits")
        def waits(x):
            return total.delay([x]).get(timeout=5)

        @app.task(shared=False, name="canvas.reads_dict")
        def reads_dict(d):
            return d.get("key")

        def fan_out(xs):
            return chord(celery_group(total.s([x]) for x in xs))(total.s())
"""


def test_canvas_and_get_inside_a_task(sandbox: Sandbox, module_factory: Any) -> None:
    module = module_factory(CANVAS_SOURCE)
    app = install(new_app(sandbox), sandbox)
    module.register(app)
    findings = audit(app)
    assert about(findings, module.__name__) == [
        ("error", "canvas", "uses chord, group, signature with no result_backend: a chord "
                            "cannot run without one")]
    ((severity, check, detail),) = about(findings, "canvas.waits")
    assert (severity, check) == ("warning", "canvas")
    assert detail.startswith("calls .get() on a result inside the task (and no result_backend")
    assert about(findings, "canvas.reads_dict") == [] == about(findings, "canvas.total")

    backed = install(new_app(sandbox, result_backend=sandbox.url), sandbox)
    module.register(backed)
    findings = audit(backed)
    assert [s for s, _, _ in about(findings, module.__name__)] == ["info"]
    assert [s for s, _, _ in about(findings, "canvas.waits")] == ["warning"]


def test_legacy_lists_and_eta_messages_then_migrate_lists(sandbox: Sandbox) -> None:
    app = install(new_app(sandbox), sandbox)
    queue = sandbox.queue("legacy")

    @app.task(shared=False, name="doctor.legacy", queue=queue)
    def legacy_task() -> None:
        return None

    r = sandbox.redis
    message = {"body": "W1tdLCB7fSwge31d", "content-type": "application/json",
               "headers": {"id": str(uuid.uuid4()), "task": "doctor.legacy"},
               "properties": {"priority": 4, "delivery_info": {"routing_key": queue}}}
    held = [dict(message, headers={**message["headers"], "eta": "2030-01-01T00:00:00+00:00"}),
            "", queue]
    try:
        r.lpush(f"{queue}{SEP}3", json.dumps(message))
        r.hset(sandbox.keys.unacked, "tag-1", json.dumps(held))
        findings = audit(app)
        assert about(findings, queue) == [(
            "warning", "legacy lists",
            "1 messages in kombu's default priority lists, which no boundary worker reads; "
            "run `celery -A app boundary migrate-lists`")]
        ((severity, _, detail),) = about(findings, "workers")
        assert severity == "warning" and detail.startswith("1 messages with a Celery eta")

        result = CliRunner().invoke(boundary, ["migrate-lists", "--json"],
                                    obj=SimpleNamespace(app=app))
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["moved"] == 1 and data["queues"][queue] == 1
        assert r.llen(f"{queue}{SEP}3") == 0
        assert json.loads(r.lindex(f"{queue}{SEP}4", 0) or "{}") == message
        assert about(audit(app), queue) == []
    finally:
        r.delete(f"{queue}{SEP}3", f"{queue}{SEP}9")


def test_redis_unavailable_is_one_warning(sandbox: Sandbox) -> None:
    app = new_app(sandbox)
    boundary_celery.install(app, sandbox.settings(redis={"url": "redis://127.0.0.1:1/0"}))
    findings = audit(app)
    redis_findings = [f for f in findings if f.check == "redis"]
    assert [f.severity for f in redis_findings] == ["warning"]
    assert redis_findings[0].detail.startswith("Redis unavailable: ")
    assert not any(f.check == "workers" for f in findings)


# -- the CLI, as a real `celery -A module boundary ...` ---------------------------------------

APP_SOURCE = """
    import os
    from celery import Celery, Task
    import boundary_celery

    app = Celery("doctorcli")
    app.conf.update(task_default_queue=os.environ["DOCTOR_QUEUE"],
                    control_exchange=os.environ["DOCTOR_CONTROL"])
    if os.environ.get("DOCTOR_INSTALL") == "1":
        boundary_celery.install(app)

    class PlainBase(Task):
        abstract = True

    @app.task(shared=False, name="cli.add")
    def add(x, y):
        return x + y

    if os.environ.get("DOCTOR_BAD_TASK") == "1":
        class Custom(PlainBase):
            name = "cli.custom"

            def run(self):
                return None

        app.register_task(Custom())  # a task class registered by hand: not a job
"""


def doctor_cli(sandbox: Sandbox, tmp_path: Path, *args: str,
               **env: str) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "doctorcli_app.py"
    module.write_text(textwrap.dedent(APP_SOURCE))
    environ = sandbox.env(DOCTOR_QUEUE=sandbox.queue("cli"),
                          DOCTOR_CONTROL=f"{sandbox.prefix}-control", **env)
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "doctorcli_app", "boundary", "doctor", *args],
        env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=40,
    )


def test_cli_doctor_exit_codes_and_json(sandbox: Sandbox, tmp_path: Path) -> None:
    clean = doctor_cli(sandbox, tmp_path, "--json", DOCTOR_INSTALL="1")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    data = json.loads(clean.stdout)
    assert set(data) == {"findings", "errors", "warnings"}
    assert (data["errors"], data["warnings"]) == (0, 0)
    assert data["findings"] and all(
        set(f) == {"severity", "check", "subject", "detail"} and f["severity"] == "info"
        for f in data["findings"])

    bad = doctor_cli(sandbox, tmp_path, "--json", DOCTOR_INSTALL="1", DOCTOR_BAD_TASK="1")
    assert bad.returncode == 1, bad.stderr
    data = json.loads(bad.stdout)
    assert data["errors"] == 1
    assert [(f["check"], f["subject"]) for f in data["findings"] if f["severity"] == "error"] == [
        ("task", "cli.custom")]

    table = doctor_cli(sandbox, tmp_path, DOCTOR_INSTALL="1", DOCTOR_BAD_TASK="1")
    assert table.returncode == 1
    assert "boundary doctor: 1 error, 0 warnings" in table.stdout
    assert "not a job" in table.stdout and "cli.custom" in table.stdout

    missing = doctor_cli(sandbox, tmp_path, "--json")
    assert missing.returncode == 1, missing.stderr
    data = json.loads(missing.stdout)
    assert data["errors"] == 1 and data["findings"][0]["check"] == "install"
    assert "Traceback" not in missing.stderr
