"""Unit tests for boundary_celery.core.job (the guide's unit tests and the contract)."""

from __future__ import annotations

import ast
import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

import boundary_celery.core as core
from boundary_celery.core import (
    EPOCH,
    TERMINAL_STATUSES,
    TRANSITIONS,
    BackoffStrategy,
    InvalidTransitionError,
    Job,
    JobError,
    JobInput,
    JobResult,
    JobStatus,
    JobValidationError,
    Priority,
    RetryPolicy,
    can_retry,
    cancel_job,
    complete_job,
    create_job,
    dead_letter_job,
    fail_job,
    interpret_handler_return,
    prepare_retry,
    schedule_job,
    start_job,
    valid_transition,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _job(**overrides: Any) -> Job:
    base: dict[str, Any] = {"job_type": "send-email", "args": {"to": "a@example.com"}}
    base.update(overrides)
    return create_job(base, uuid4(), now=T0)


def _running(**overrides: Any) -> Job:
    return start_job(_job(**overrides), now=T0)


# --- the guide's create-job-test -------------------------------------------------------------


def test_create_job_defaults() -> None:
    job_id = uuid4()
    job = create_job({"job_type": "send-email", "args": {"to": "test@example.com"}}, job_id)
    assert job.id == job_id
    assert job.job_type == "send-email"
    assert job.status is JobStatus.PENDING
    assert job.priority is Priority.NORMAL
    assert job.max_retries == 3
    assert job.retry_count == 0
    assert job.queue == "default"
    assert job.args == {"to": "test@example.com"}
    assert job.created_at is None and job.updated_at is None


def test_create_job_guide_keys_and_now() -> None:
    job = create_job(
        {"job-type": ":send-email", "max-retries": 1, "tenant-id": "acme", "priority": "high"},
        str(UUID(int=7)),
        now=T0,
    )
    assert job.id == UUID(int=7)
    assert job.job_type == "send-email"
    assert (job.max_retries, job.tenant_id, job.priority) == (1, "acme", Priority.HIGH)
    assert job.created_at == T0 and job.updated_at == T0


def test_create_job_with_execute_at_is_scheduled() -> None:
    at = T0 + timedelta(hours=1)
    job = create_job({"job_type": "x", "execute-at": at}, uuid4(), now=T0)
    assert job.status is JobStatus.SCHEDULED and job.execute_at == at


def test_schedule_job() -> None:
    at = T0 + timedelta(minutes=5)
    job = schedule_job({"job_type": "x", "priority": "low"}, uuid4(), at, now=T0)
    assert job.status is JobStatus.SCHEDULED
    assert job.execute_at == at and job.priority is Priority.LOW
    with pytest.raises(JobValidationError) as exc:
        schedule_job({"job_type": "x"}, uuid4(), datetime(2024, 1, 1))
    assert exc.value.field == "execute_at"


@pytest.mark.parametrize("bad_id", ["not-a-uuid", 123, None])
def test_create_job_bad_id(bad_id: Any) -> None:
    with pytest.raises(JobValidationError) as exc:
        create_job({"job_type": "x"}, bad_id)
    assert exc.value.field == "id"
    assert repr(bad_id) in str(exc.value)


# --- the guide's fail-job-with-retry-test ----------------------------------------------------


@pytest.mark.parametrize("as_mapping", [True, False])
def test_fail_job_marks_retrying_when_retries_remain(as_mapping: bool) -> None:
    job_id = uuid4()
    raw = {"id": job_id, "status": "running", "retry_count": 1, "max_retries": 3}
    job: Job | dict[str, Any] = raw if as_mapping else Job.from_dict({**raw, "job_type": "x"})
    error = {"message": "Timeout", "type": "NetworkError"}
    result = fail_job(job, error)
    assert result.status is JobStatus.RETRYING
    assert result.retry_count == 2
    assert result.error == JobError(message="Timeout", type="NetworkError")
    assert result.error is not None and result.error.model_dump(exclude_none=True) == error
    assert result.completed_at is None
    assert result.id == job_id


@pytest.mark.parametrize("as_mapping", [True, False])
def test_fail_job_marks_failed_when_max_retries_exceeded(as_mapping: bool) -> None:
    raw = {"id": uuid4(), "status": "running", "retry_count": 3, "max_retries": 3}
    job: Job | dict[str, Any] = raw if as_mapping else Job.from_dict({**raw, "job_type": "x"})
    error = {"message": "Permanent failure", "type": "ValidationError"}
    result = fail_job(job, error)
    assert result.status is JobStatus.FAILED
    assert result.retry_count == 4
    assert result.completed_at is not None
    assert result.completed_at == EPOCH  # no `now`: documented sentinel, never a clock read
    assert result.error is not None and result.error.message == "Permanent failure"


def test_fail_job_with_now_sets_times_and_duration() -> None:
    running = start_job(_job(max_retries=0), now=T0)
    end = T0 + timedelta(milliseconds=1500)
    failed = fail_job(running, JobError(message="boom", type="RuntimeError"), now=end)
    assert failed.status is JobStatus.FAILED
    assert failed.completed_at == end and failed.updated_at == end
    assert failed.duration_ms == pytest.approx(1500.0)


def test_fail_job_keeps_priority_queue_and_tenant() -> None:
    running = _running(priority="critical", queue="emails", tenant_id="t1")
    retrying = fail_job(running, {"message": "x", "type": "E"}, now=T0)
    assert (retrying.priority, retrying.queue, retrying.tenant_id) == (
        Priority.CRITICAL,
        "emails",
        "t1",
    )


def test_fail_job_rejects_bad_error() -> None:
    with pytest.raises(JobValidationError) as exc:
        fail_job(_running(), {"message": "no type"})
    assert exc.value.field == "error"
    with pytest.raises(JobValidationError):
        fail_job(_running(), "just a string")  # type: ignore[arg-type]


def test_fail_job_from_pending_with_budget_is_invalid_transition() -> None:
    with pytest.raises(InvalidTransitionError) as exc:
        fail_job(_job(), {"message": "x", "type": "E"})
    assert "pending" in str(exc.value) and "retrying" in str(exc.value)


def test_dead_letter_job_from_pending() -> None:
    dead = dead_letter_job(_job(), {"message": "no handler", "type": "NoHandlerError"}, now=T0)
    assert dead.status is JobStatus.FAILED and dead.retry_count == 0
    assert dead.completed_at == T0
    with pytest.raises(InvalidTransitionError):
        dead_letter_job(complete_job(_running(), 1), {"message": "x", "type": "E"})


def test_partial_mapping_requires_id() -> None:
    with pytest.raises(JobValidationError) as exc:
        fail_job({"status": "running"}, {"message": "x", "type": "E"})
    assert exc.value.field == "id"


# --- transitions ------------------------------------------------------------------------------

_EXPECTED = {
    "pending": {"running", "scheduled", "cancelled", "failed"},
    "scheduled": {"pending", "running", "cancelled", "failed"},
    "running": {"completed", "retrying", "failed", "running", "cancelled"},
    "retrying": {"running", "pending", "scheduled", "cancelled", "failed"},
    "failed": {"pending"},
    "completed": set(),
    "cancelled": set(),
}


@pytest.mark.parametrize("source", [s.value for s in JobStatus])
@pytest.mark.parametrize("target", [s.value for s in JobStatus])
def test_transition_table(source: str, target: str) -> None:
    expected = target in _EXPECTED[source]
    assert valid_transition(source, target) is expected
    assert valid_transition(JobStatus(source), JobStatus(target)) is expected
    assert (JobStatus(target) in TRANSITIONS[JobStatus(source)]) is expected


def test_terminal_statuses_and_unknown() -> None:
    assert frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED}) == TERMINAL_STATUSES
    assert valid_transition("bogus", "running") is False
    assert valid_transition("PENDING", " Running ") is True


def test_start_complete_durations() -> None:
    running = start_job(_job(), now=T0)
    assert running.status is JobStatus.RUNNING and running.started_at == T0
    done = complete_job(running, {"ok": 1}, now=T0 + timedelta(seconds=2))
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"ok": 1} and done.error is None
    assert done.duration_ms == pytest.approx(2000.0)
    assert done.completed_at == T0 + timedelta(seconds=2)
    with pytest.raises(InvalidTransitionError):
        start_job(done)
    with pytest.raises(InvalidTransitionError):
        complete_job(_job(), 1)


def test_complete_clears_previous_error() -> None:
    retrying = fail_job(_running(), {"message": "x", "type": "E"}, now=T0)
    done = complete_job(start_job(retrying, now=T0), 5, now=T0)
    assert done.error is None and done.result == 5 and done.retry_count == 1


def test_transitions_do_not_mutate_input() -> None:
    job = _job()
    start_job(job, now=T0)
    assert job.status is JobStatus.PENDING and job.started_at is None
    with pytest.raises(Exception):  # noqa: B017 - pydantic frozen instance error
        job.status = JobStatus.RUNNING  # type: ignore[misc]


def test_cancel_job() -> None:
    cancelled = cancel_job(_job(), now=T0)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.updated_at == T0
    assert cancel_job(_running()).status is JobStatus.CANCELLED
    with pytest.raises(InvalidTransitionError):
        cancel_job(cancelled)
    with pytest.raises(InvalidTransitionError):
        cancel_job(fail_job(_running(max_retries=0), {"message": "x", "type": "E"}))


def test_redelivery_running_to_running() -> None:
    running = _running()
    later = T0 + timedelta(minutes=1)
    again = start_job(running, now=later)
    assert again.status is JobStatus.RUNNING and again.started_at == later


# --- can_retry / prepare_retry ---------------------------------------------------------------


def test_can_retry() -> None:
    assert can_retry({"id": uuid4(), "retry_count": 2, "max_retries": 3}) is True
    assert can_retry({"id": uuid4(), "retry_count": 3, "max_retries": 3}) is False


def _dead(max_retries: int = 3) -> Job:
    job = _running(max_retries=max_retries)
    while True:
        job = fail_job(job, {"message": "x", "type": "E"}, now=T0)
        if job.status is JobStatus.FAILED:
            return job
        job = start_job(job, now=T0)


def test_prepare_retry_one_more_failure_returns_to_dlq() -> None:
    dead = _dead()
    assert dead.retry_count == 4
    again = prepare_retry(dead, now=T0 + timedelta(days=1))
    assert again.status is JobStatus.PENDING
    assert again.error == dead.error
    assert again.completed_at is None and again.started_at is None and again.result is None
    assert again.retry_count == 4 and again.max_retries == 4
    assert again.priority == dead.priority and again.queue == dead.queue
    refailed = fail_job(start_job(again, now=T0), {"message": "y", "type": "E"}, now=T0)
    assert refailed.status is JobStatus.FAILED
    assert refailed.retry_count == 5


def test_prepare_retry_reset_restores_full_budget() -> None:
    again = prepare_retry(_dead(max_retries=2), reset_retries=True)
    assert again.retry_count == 0 and again.max_retries == 2
    job = again
    statuses = []
    for _ in range(3):
        job = fail_job(start_job(job), {"message": "x", "type": "E"})
        statuses.append(job.status)
        if job.status is JobStatus.RETRYING:
            job = prepare_retry(job)
    assert statuses == [JobStatus.RETRYING, JobStatus.RETRYING, JobStatus.FAILED]


def test_prepare_retry_of_dead_lettered_without_run() -> None:
    dead = dead_letter_job(_job(), {"message": "no handler", "type": "NoHandlerError"})
    again = prepare_retry(dead)
    failed = fail_job(start_job(again), {"message": "x", "type": "E"})
    assert failed.status is JobStatus.FAILED


def test_prepare_retry_invalid_states() -> None:
    with pytest.raises(InvalidTransitionError):
        prepare_retry(_job())
    with pytest.raises(InvalidTransitionError):
        prepare_retry(complete_job(_running(), None))


# --- JobInput validation ----------------------------------------------------------------------


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("overrides", "field", "bad"),
    [
        ({"priority": "urgent"}, "priority", "urgent"),
        ({"priority": 10}, "priority", 10),
        ({"priority": -1}, "priority", -1),
        ({"priority": True}, "priority", True),
        ({"max_retries": -1}, "max_retries", -1),
        ({"max_retries": 26}, "max_retries", 26),
        ({"max_retries": "3"}, "max_retries", "3"),
        ({"max_retries": True}, "max_retries", True),
        ({"max-retries": 2.5}, "max_retries", 2.5),
        ({"args": {"tags": {"a", "b"}}}, "args", None),
        ({"args": {"obj": _Opaque()}}, "args", None),
        ({"args": {"x": float("nan")}}, "args", None),
        ({"args": {"x": float("inf")}}, "args", None),
        ({"args": {1: "int key"}}, "args", None),
        ({"args": {"nested": {2: "int key"}}}, "args", None),
        ({"args": ["not", "a", "dict"]}, "args", None),
        ({"metadata": {"s": {1}}}, "metadata", None),
        ({"job_type": ""}, "job_type", ""),
        ({"job_type": "   "}, "job_type", "   "),
        ({"job_type": 5}, "job_type", 5),
        ({"job_type": "x" * 201}, "job_type", "x" * 201),
        ({"queue": "bad queue"}, "queue", "bad queue"),
        ({"queue": ""}, "queue", ""),
        ({"queue": "q/1"}, "queue", "q/1"),
        ({"queue": "q" * 201}, "queue", "q" * 201),
        ({"tenant_id": ""}, "tenant_id", ""),
        ({"tenant_id": 42}, "tenant_id", 42),
        ({"execute_at": datetime(2024, 1, 1)}, "execute_at", datetime(2024, 1, 1)),
        ({"execute_at": "not a date"}, "execute_at", "not a date"),
        ({"colour": "red"}, "colour", "red"),
    ],
)
def test_job_input_rejects_bad_values(overrides: dict[str, Any], field: str, bad: Any) -> None:
    data: dict[str, Any] = {"job_type": "send-email", **overrides}
    with pytest.raises(JobValidationError) as exc:
        JobInput.parse(data)
    err = exc.value
    assert err.field == field
    assert field in str(err)
    value = bad if bad is not None else next(iter(overrides.values()))
    assert err.value is value or err.value == value
    if isinstance(value, (str, int)):
        assert repr(value) in str(err)
    with pytest.raises(JobValidationError):
        create_job(data, uuid4())


def test_unknown_field_reason() -> None:
    with pytest.raises(JobValidationError) as exc:
        JobInput.parse({"job_type": "x", "colour": "red"})
    assert exc.value.reason == "unknown field"
    assert str(exc.value) == "invalid colour: 'red' (unknown field)"


def test_missing_job_type() -> None:
    with pytest.raises(JobValidationError) as exc:
        JobInput.parse({"args": {}})
    assert exc.value.field == "job_type"


def test_direct_construction_also_wraps_errors() -> None:
    with pytest.raises(JobValidationError) as exc:
        JobInput(job_type="x", max_retries=99)
    assert exc.value.field == "max_retries"


def test_job_input_accepts_good_values() -> None:
    at = T0 + timedelta(days=1)
    spec = JobInput.parse(
        {
            "job-type": "report",
            "args": {"n": 1, "items": [1, 2.5, None, True, {"k": "v"}], "s": "x"},
            "priority": 0,
            "queue": "reports.v2:eu-1",
            "max-retries": 25,
            "metadata": {"trace": "abc"},
            "tenant-id": "acme",
            "execute-at": at.isoformat(),
            "retry-policy": {"backoff-strategy": "linear", "initial-delay-ms": 10},
        }
    )
    assert spec.priority is Priority.CRITICAL
    assert spec.max_retries == 25 and spec.execute_at == at
    assert spec.retry_policy == RetryPolicy(
        backoff_strategy=BackoffStrategy.LINEAR, initial_delay_ms=10
    )
    assert JobInput.parse(spec) is spec
    assert json.dumps(spec.args, allow_nan=False)


def test_max_retries_bounds_accepted() -> None:
    assert JobInput.parse({"job_type": "x", "max_retries": 0}).max_retries == 0
    assert JobInput.parse({"job_type": "x", "max_retries": 25}).max_retries == 25


# --- JobValidationError / InvalidTransitionError ---------------------------------------------


def test_error_format_and_pickle() -> None:
    err = JobValidationError("priority", "urgent", "nope")
    assert str(err) == "invalid priority: 'urgent' (nope)"
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.field, clone.value, clone.reason) == ("priority", "urgent", "nope")
    bad = pickle.loads(pickle.dumps(InvalidTransitionError(JobStatus.FAILED, JobStatus.RUNNING)))
    assert str(bad) == "invalid transition: failed -> running"


# --- Job dict round trip ----------------------------------------------------------------------


def test_to_dict_is_json_ready_and_round_trips() -> None:
    job = fail_job(
        _running(retry_policy=RetryPolicy.preset("reference"), tenant_id="t"),
        {"message": "m", "type": "E", "stacktrace": "tb"},
        now=T0 + timedelta(seconds=1),
    )
    data = job.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["id"] == str(job.id)
    assert data["status"] == "retrying" and data["priority"] == "normal"
    assert isinstance(data["created_at"], str)
    assert Job.from_dict(json.loads(text)) == job


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(JobValidationError) as exc:
        Job.from_dict({"id": "nope", "job_type": "x", "status": "pending"})
    assert exc.value.field == "id"
    with pytest.raises(JobValidationError) as exc:
        Job.from_dict({"id": str(uuid4()), "job_type": "x", "status": "exploded"})
    assert exc.value.field == "status"


# --- JobResult / interpret_handler_return ----------------------------------------------------


def test_job_result_constructors() -> None:
    ok = JobResult.success({"message-id": "1"})
    assert ok.success is True and ok.result == {"message-id": "1"} and ok.error is None
    bad = JobResult.failure("SMTP error", "EmailError")
    assert bad.success is False and bad.error == JobError(message="SMTP error", type="EmailError")
    assert JobResult.failure("x").error == JobError(message="x", type="JobError")
    with pytest.raises(JobValidationError):
        JobResult(False)


@pytest.mark.parametrize("key", ["success?", "success"])
def test_interpret_guide_failure_shape(key: str) -> None:
    value = {key: False, "error": {"message": "SMTP error", "type": "EmailError"}}
    result = interpret_handler_return(value)
    assert result.success is False
    assert result.error == JobError(message="SMTP error", type="EmailError")


@pytest.mark.parametrize("key", ["success?", "success"])
def test_interpret_guide_success_shape(key: str) -> None:
    result = interpret_handler_return({key: True, "result": {"message-id": "m1"}})
    assert result == JobResult.success({"message-id": "m1"})


def test_interpret_failure_without_error_details() -> None:
    result = interpret_handler_return({"success": False})
    assert result.success is False and result.error is not None
    assert result.error.type == "JobError"


@pytest.mark.parametrize(
    "value",
    [None, 0, "done", [1, 2], {"a": 1}, {"success": "no"}, {"success": True, "other": 1}],
)
def test_interpret_plain_values_are_success(value: Any) -> None:
    result = interpret_handler_return(value)
    assert result.success is True and result.result == value


def test_interpret_passes_job_result_through() -> None:
    failure = JobResult.failure("x", "Y")
    assert interpret_handler_return(failure) is failure


# --- purity ---------------------------------------------------------------------------------

_CORE_DIR = Path(core.__file__).parent
_FORBIDDEN_MODULES = {
    "celery", "kombu", "redis", "random", "time", "os", "socket", "subprocess", "threading",
    "asyncio", "requests", "httpx", "secrets", "uuid_utils", "shutil", "io", "pathlib",
}  # fmt: skip
_FORBIDDEN_ATTRS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "uuid4"}
_FORBIDDEN_NAMES = {"open", "print", "input", "uuid4", "exec", "eval"}


def _violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod.split(".")[0] in _FORBIDDEN_MODULES:
                found.append(mod)
            found += [f"{mod}.{a.name}" for a in node.names if a.name in _FORBIDDEN_NAMES]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _FORBIDDEN_ATTRS:
                found.append(f"call .{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in _FORBIDDEN_NAMES:
                found.append(f"call {func.id}()")
    return found


def test_purity_scanner_catches_violations() -> None:
    bad = (
        "import random\nfrom celery import Celery\nimport redis.client\n"
        "from datetime import datetime\nx = datetime.now()\ny = datetime.utcnow()\n"
        "open('f')\nfrom uuid import uuid4\n"
    )
    assert len(_violations(bad)) == 7
    assert _violations("from datetime import UTC, datetime\nx = datetime(1970, 1, 1)\n") == []


def test_core_is_pure() -> None:
    files = sorted(_CORE_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"job.py", "retry.py", "priority.py", "errors.py"}
    problems = {f.name: v for f in files if (v := _violations(f.read_text()))}
    assert problems == {}


def test_public_names_exported() -> None:
    for name in core.__all__:
        assert hasattr(core, name), name
    assert core.calculate_retry_delay is core.job.calculate_retry_delay
