"""Unit tests for core.delivery (delivery verdict), the status sets and retryability."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

import boundary_celery.core as core
from boundary_celery.core import (
    DELIVERY_OK,
    DELIVERY_STALE,
    NON_RETRYABLE_ERRORS,
    SKIP_DELIVERY_STATUS_VALUES,
    SKIP_DELIVERY_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Job,
    JobResult,
    JobStatus,
    NoHandlerError,
    RetryPolicy,
    UnknownTenantError,
    create_job,
    delivery_verdict,
    error_from_exception,
    is_retryable,
    settle,
    start_job,
    valid_transition,
)
from boundary_celery.core.delivery import DELIVERY_BUSY
from boundary_celery.core.errors import RetryNotPublishedError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(milliseconds=250)

statuses = st.sampled_from(list(JobStatus))
counts = st.integers(min_value=0, max_value=1000)


# --- status sets ----------------------------------------------------------------------------


def test_terminal_statuses_are_those_the_table_never_leaves() -> None:
    assert frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED}) == TERMINAL_STATUSES
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL_STATUSES


def test_failed_is_not_terminal_it_can_be_retried() -> None:
    assert JobStatus.FAILED not in TERMINAL_STATUSES
    assert valid_transition(JobStatus.FAILED, JobStatus.PENDING)


def test_skip_delivery_statuses() -> None:
    assert frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED}) == SKIP_DELIVERY_STATUSES
    assert JobStatus.FAILED not in SKIP_DELIVERY_STATUSES
    assert JobStatus.RUNNING not in SKIP_DELIVERY_STATUSES


def test_skipped_statuses_are_terminal() -> None:
    # A record that could leave a skip status would have its later deliveries wrongly skipped.
    assert SKIP_DELIVERY_STATUSES <= TERMINAL_STATUSES


def test_skip_delivery_status_values_are_sorted_plain_strings() -> None:
    assert SKIP_DELIVERY_STATUS_VALUES == ("cancelled", "completed")
    assert all(type(v) is str for v in SKIP_DELIVERY_STATUS_VALUES)
    assert set(SKIP_DELIVERY_STATUS_VALUES) == {s.value for s in SKIP_DELIVERY_STATUSES}


# --- delivery_verdict -----------------------------------------------------------------------


def _begin_lua(status: str | None, rc: int | None, message_rc: int) -> str:
    """The decision part of adapters/lua/begin.lua, transcribed (the oracle)."""
    if status == "completed" or status == "cancelled":
        return status
    if rc is not None and rc > message_rc:
        return "stale"
    return "ok"


@pytest.mark.parametrize(
    ("status", "stored_rc", "message_rc", "expected"),
    [
        (None, None, 0, "ok"),  # no record yet
        ("pending", 0, 0, "ok"),
        ("running", 1, 1, "ok"),  # a redelivery of the current attempt
        ("retrying", 1, 2, "ok"),  # record behind the message: fine
        ("failed", 3, 3, "ok"),  # a retry from the DLQ runs
        ("completed", 0, 0, "completed"),
        ("cancelled", 0, 0, "cancelled"),
        ("completed", 5, 0, "completed"),  # the status wins over staleness
        ("cancelled", None, 0, "cancelled"),
        ("running", 2, 1, "stale"),  # a duplicate of an older attempt
        ("retrying", 3, 0, "stale"),
        ("failed", 4, 3, "stale"),
        (None, 2, 1, "stale"),  # retry_count without a status: Lua still calls it stale
        (JobStatus.COMPLETED, 0, 0, "completed"),
        (JobStatus.CANCELLED, 9, 0, "cancelled"),
        (JobStatus.RUNNING, 1, 0, "stale"),
        (JobStatus.PENDING, 0, 0, "ok"),
        ("COMPLETED", 0, 0, "ok"),  # exact stored value only, as the Lua compares
        (":completed", 0, 0, "ok"),
        ("", None, 0, "ok"),
    ],
)
def test_delivery_verdict_cases(
    status: JobStatus | str | None, stored_rc: int | None, message_rc: int, expected: str
) -> None:
    verdict = delivery_verdict(status, stored_rc, message_rc)
    assert verdict == expected
    assert type(verdict) is str  # a plain string, not a JobStatus


def test_verdict_constants() -> None:
    assert (DELIVERY_OK, DELIVERY_STALE) == ("ok", "stale")
    assert delivery_verdict(None, None, 0) is DELIVERY_OK


@given(
    status=st.one_of(
        st.none(),
        statuses,
        statuses.map(lambda s: s.value),
        st.text(max_size=12),
    ),
    stored_rc=st.one_of(st.none(), counts),
    message_rc=counts,
)
def test_delivery_verdict_mirrors_begin_lua(
    status: JobStatus | str | None, stored_rc: int | None, message_rc: int
) -> None:
    oracle_status = status.value if isinstance(status, JobStatus) else status
    assert delivery_verdict(status, stored_rc, message_rc) == _begin_lua(
        oracle_status, stored_rc, message_rc
    )


@given(status=statuses, stored_rc=st.one_of(st.none(), counts), message_rc=counts)
def test_enum_and_string_statuses_agree(
    status: JobStatus, stored_rc: int | None, message_rc: int
) -> None:
    assert delivery_verdict(status, stored_rc, message_rc) == delivery_verdict(
        status.value, stored_rc, message_rc
    )


@given(status=statuses, stored_rc=st.one_of(st.none(), counts), message_rc=counts)
def test_verdict_is_ok_exactly_when_nothing_forbids_it(
    status: JobStatus, stored_rc: int | None, message_rc: int
) -> None:
    verdict = delivery_verdict(status, stored_rc, message_rc)
    assert verdict in {"ok", "stale", "completed", "cancelled"}
    if status in SKIP_DELIVERY_STATUSES:
        assert verdict == status.value
    elif stored_rc is not None and stored_rc > message_rc:
        assert verdict == "stale"
    else:
        assert verdict == "ok"


@given(status=statuses, stored_rc=counts, message_rc=counts, bump=counts)
def test_a_newer_message_is_never_less_runnable(
    status: JobStatus, stored_rc: int, message_rc: int, bump: int
) -> None:
    older = delivery_verdict(status, stored_rc, message_rc)
    newer = delivery_verdict(status, stored_rc, message_rc + bump)
    if older == "ok":
        assert newer == "ok"
    if status not in SKIP_DELIVERY_STATUSES and message_rc + bump >= stored_rc:
        assert newer == "ok"


# --- retryability ---------------------------------------------------------------------------


class _SpecialTenantError(UnknownTenantError):
    pass


def test_non_retryable_errors() -> None:
    assert (UnknownTenantError, RetryNotPublishedError) == NON_RETRYABLE_ERRORS


@pytest.mark.parametrize(
    "exc",
    [UnknownTenantError("ghost"), UnknownTenantError, "UnknownTenantError", _SpecialTenantError()],
)
def test_unknown_tenant_is_not_retryable(exc: BaseException | type[BaseException] | str) -> None:
    assert is_retryable(exc) is False


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError,
        "ValueError",
        NoHandlerError("x"),
        RuntimeError,
        "JobError",
        "",
        "_SpecialTenantError",  # a name matches the listed classes only, not subclasses
    ],
)
def test_other_errors_are_retryable(exc: BaseException | type[BaseException] | str) -> None:
    assert is_retryable(exc) is True


_EXCEPTION_TYPES = [
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    ZeroDivisionError,
    OSError,
    NoHandlerError,
    UnknownTenantError,
]


@given(kind=st.sampled_from(_EXCEPTION_TYPES), message=st.text(max_size=20))
def test_instance_class_and_name_agree(kind: type[Exception], message: str) -> None:
    expected = kind not in NON_RETRYABLE_ERRORS
    assert is_retryable(kind(message)) is expected
    assert is_retryable(kind) is expected
    assert is_retryable(kind.__name__) is expected


def _running(retry_count: int = 0, max_retries: int = 3) -> Job:
    job = create_job({"job_type": "x", "max_retries": max_retries}, uuid4(), now=T0)
    return start_job(job.model_copy(update={"retry_count": retry_count}), now=T0)


def _failure(exc: BaseException) -> JobResult:
    return JobResult.failure(**error_from_exception(exc).model_dump())


def test_settle_dead_letters_a_non_retryable_failure_with_budget_left() -> None:
    err = UnknownTenantError("unknown tenant 'ghost'")
    s = settle(_running(0, 3), _failure(err), T1, RetryPolicy(), exc=err)
    assert s.job.status is JobStatus.FAILED and s.dead_lettered is True
    assert s.retry_delay_ms is None
    assert s.job.retry_count == 1 and s.job.max_retries == 0
    assert s.job.error is not None and s.job.error.type == "UnknownTenantError"
    assert s.job.completed_at == T1


def test_settle_retries_a_retryable_failure() -> None:
    err = ValueError("flaky")
    s = settle(_running(0, 3), _failure(err), T1, RetryPolicy(), lambda: 0.5, exc=err)
    assert s.job.status is JobStatus.RETRYING and s.dead_lettered is False
    assert s.retry_delay_ms is not None and s.job.max_retries == 3


def test_settle_without_exc_is_unchanged() -> None:
    outcome = JobResult.failure("nope", "UnknownTenantError")  # returned, not raised
    s = settle(_running(0, 3), outcome, T1, RetryPolicy(), lambda: 0.5)
    assert s.job.status is JobStatus.RETRYING and s.job.max_retries == 3


def test_settle_success_ignores_exc() -> None:
    s = settle(_running(), JobResult.success(1), T1, RetryPolicy(), exc=UnknownTenantError())
    assert s.job.status is JobStatus.COMPLETED and s.job.max_retries == 3


@given(
    retry_count=st.integers(min_value=0, max_value=25),
    max_retries=st.integers(min_value=0, max_value=25),
    exc=st.sampled_from([UnknownTenantError("t"), _SpecialTenantError("t"), ValueError("v")]),
)
def test_settle_exc_matches_the_old_shell_rule(
    retry_count: int, max_retries: int, exc: Exception
) -> None:
    """What execution.py did: on UnknownTenantError, max_retries = retry_count, then settle."""
    running = _running(retry_count, max_retries)
    outcome = _failure(exc)
    before = running
    if isinstance(exc, UnknownTenantError):
        before = running.model_copy(update={"max_retries": running.retry_count})
    expected = settle(before, outcome, T1, RetryPolicy(), lambda: 0.25)
    assert settle(running, outcome, T1, RetryPolicy(), lambda: 0.25, exc=exc) == expected
    assert settle(running, outcome, T1, RetryPolicy(), lambda: 0.25, exc=type(exc)) == expected


# --- module layout --------------------------------------------------------------------------


def _core_imports(path: Path) -> set[str]:
    """Core modules imported at module level (not inside functions) by ``path``."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "boundary_celery.core"
        ):
            module = node.module or ""
            if module == "boundary_celery.core":
                found |= {a.name for a in node.names}
            else:
                found.add(module.rsplit(".", 1)[1])
    return found


def test_core_modules_import_each_other_without_cycles() -> None:
    core_dir = Path(core.__file__).parent
    graph = {f.stem: _core_imports(f) for f in core_dir.glob("*.py") if f.stem != "__init__"}
    assert "outcome" not in graph["job"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for dep in graph.get(module, ()):
            visit(dep, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


# --- one runner per attempt -----------------------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize(("stored_rc", "message_rc"), [(0, 0), (1, 1), (0, 1), (1, 0)])
def test_busy_only_for_the_same_running_attempt_held_elsewhere(status, stored_rc, message_rc):
    plain = delivery_verdict(status, stored_rc, message_rc)
    held = delivery_verdict(status, stored_rc, message_rc, held_elsewhere=True)
    if status is JobStatus.RUNNING and stored_rc == message_rc:
        assert (plain, held) == ("ok", DELIVERY_BUSY)
    else:
        assert held == plain  # a lease elsewhere changes nothing else
