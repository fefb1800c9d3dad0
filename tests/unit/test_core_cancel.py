"""Unit tests for the cancellation policy in core.status (cancel_action, cancel_rule)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import boundary_celery
from boundary_celery.core import (
    CANCEL_NOW_STATUSES,
    CANCEL_REQUEST_STATUSES,
    SKIP_DELIVERY_STATUSES,
    TERMINAL_STATUSES,
    CancelAction,
    JobCancelledError,
    JobStatus,
    JobValidationError,
    cancel_action,
    cancel_rule,
    valid_transition,
)

S = JobStatus


@pytest.mark.parametrize(
    ("status", "expected", "stopped_expected"),
    [
        (S.PENDING, CancelAction.CANCEL, CancelAction.CANCEL),
        (S.SCHEDULED, CancelAction.CANCEL, CancelAction.CANCEL),
        (S.RETRYING, CancelAction.CANCEL, CancelAction.CANCEL),
        (S.RUNNING, CancelAction.REQUEST, CancelAction.CANCEL),
        (S.COMPLETED, CancelAction.NONE, CancelAction.NONE),
        (S.FAILED, CancelAction.NONE, CancelAction.NONE),
        (S.CANCELLED, CancelAction.NONE, CancelAction.NONE),
    ],
)
def test_cancel_action_per_status(
    status: JobStatus, expected: CancelAction, stopped_expected: CancelAction
) -> None:
    assert cancel_action(status) is expected
    assert cancel_action(status.value) is expected  # stored values parse
    assert cancel_action(status, stopped=True) is stopped_expected


def test_cancel_action_rejects_an_unknown_status() -> None:
    with pytest.raises(JobValidationError):
        cancel_action("paused")


@given(st.sampled_from(list(JobStatus)), st.booleans())
def test_a_cancel_is_always_an_allowed_transition(status: JobStatus, stopped: bool) -> None:
    if cancel_action(status, stopped=stopped) is CancelAction.CANCEL:
        assert valid_transition(status, S.CANCELLED)


def test_the_status_sets() -> None:
    assert frozenset({S.PENDING, S.SCHEDULED, S.RETRYING}) == CANCEL_NOW_STATUSES
    assert frozenset({S.RUNNING}) == CANCEL_REQUEST_STATUSES
    assert not CANCEL_NOW_STATUSES & CANCEL_REQUEST_STATUSES
    # Finished jobs are never touched; failed stays in the DLQ, retryable from there.
    finished = TERMINAL_STATUSES | {S.FAILED}
    assert not (CANCEL_NOW_STATUSES | CANCEL_REQUEST_STATUSES) & finished
    assert set(JobStatus) == CANCEL_NOW_STATUSES | CANCEL_REQUEST_STATUSES | finished
    # A cancelled job's waiting copy is skipped on delivery.
    assert S.CANCELLED in SKIP_DELIVERY_STATUSES


def test_cancel_rule_is_the_action_as_sorted_values() -> None:
    assert cancel_rule() == (("pending", "retrying", "scheduled"), ("running",))
    assert cancel_rule(stopped=True) == (("pending", "retrying", "running", "scheduled"), ())
    for stopped in (False, True):
        now, request = cancel_rule(stopped=stopped)
        assert all(type(v) is str for v in (*now, *request))
        for status in JobStatus:
            action = cancel_action(status, stopped=stopped)
            assert (status.value in now) is (action is CancelAction.CANCEL)
            assert (status.value in request) is (action is CancelAction.REQUEST)


def test_job_cancelled_error_is_public() -> None:
    assert boundary_celery.JobCancelledError is JobCancelledError
    assert issubclass(JobCancelledError, Exception)
    assert boundary_celery.cancel_requested() is False  # outside a job
