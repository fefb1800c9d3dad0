"""Property tests (hypothesis) for the pure core."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from boundary_celery.core import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    BackoffStrategy,
    Job,
    JobError,
    JobStatus,
    Priority,
    RetryPolicy,
    calculate_retry_delay,
    create_job,
    fail_job,
    start_job,
    valid_transition,
)

statuses = st.sampled_from(list(JobStatus))


@given(start=statuses, steps=st.lists(st.integers(min_value=0, max_value=10**6), max_size=30))
def test_random_walks_only_take_valid_transitions(start: JobStatus, steps: list[int]) -> None:
    current = start
    for step in steps:
        options = sorted(TRANSITIONS[current])
        if not options:
            break
        nxt = options[step % len(options)]
        assert valid_transition(current, nxt)
        assert valid_transition(current.value, nxt.value)
        current = nxt


@given(terminal=st.sampled_from(sorted(TERMINAL_STATUSES)), targets=st.lists(statuses))
def test_no_valid_transition_leaves_a_terminal_state(
    terminal: JobStatus, targets: list[JobStatus]
) -> None:
    current = terminal
    for target in targets:
        if valid_transition(current, target):
            current = target
    assert current is terminal
    assert all(not valid_transition(terminal, s) for s in JobStatus)


@given(start=statuses, target=statuses)
def test_valid_transition_matches_table(start: JobStatus, target: JobStatus) -> None:
    assert valid_transition(start, target) == (target in TRANSITIONS[start])


delays_ms = st.integers(min_value=0, max_value=10**7)


@given(
    strategy=st.sampled_from(["exponential", "linear"]),
    initial=delays_ms,
    maximum=delays_ms,
    k=st.integers(min_value=0, max_value=200),
)
def test_delays_monotonic_and_capped(strategy: str, initial: int, maximum: int, k: int) -> None:
    policy = RetryPolicy(
        backoff_strategy=BackoffStrategy(strategy), initial_delay_ms=initial, max_delay_ms=maximum
    )
    this = calculate_retry_delay(k, policy)
    nxt = calculate_retry_delay(k + 1, policy)
    assert 0 <= this <= nxt <= maximum


@given(
    strategy=st.sampled_from(["exponential", "linear", "constant"]),
    initial=delays_ms,
    maximum=delays_ms,
    ratio=st.floats(min_value=0.0, max_value=1.0),
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    k=st.integers(min_value=0, max_value=10**20),
)
def test_jittered_delay_bounded(
    strategy: str, initial: int, maximum: int, ratio: float, r: float, k: int
) -> None:
    base = RetryPolicy(
        backoff_strategy=BackoffStrategy(strategy), initial_delay_ms=initial, max_delay_ms=maximum
    )
    jittered = base.model_copy(update={"jitter": True, "jitter_ratio": ratio})
    plain = calculate_retry_delay(k, base)
    delay = calculate_retry_delay(k, jittered, rand=lambda: r)
    assert plain <= delay <= maximum
    assert delay <= plain + plain * ratio
    assert delay == calculate_retry_delay(k, jittered, rand=lambda: r)


@given(max_retries=st.integers(min_value=0, max_value=25))
def test_fail_job_reaches_failed_after_max_retries_plus_one(max_retries: int) -> None:
    job = create_job({"job_type": "x", "max_retries": max_retries}, UUID(int=1))
    error = JobError(message="boom", type="E")
    failures = 0
    while True:
        job = fail_job(start_job(job), error)
        failures += 1
        if job.status is JobStatus.FAILED:
            break
        assert job.status is JobStatus.RETRYING
        assert failures <= max_retries
    assert failures == max_retries + 1
    assert job.retry_count == max_retries + 1


json_leaf: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=10),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_object = st.dictionaries(st.text(max_size=8), json_value, max_size=4)
aware_dt = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
opt_dt = st.none() | aware_dt
policies = (
    st.none()
    | st.builds(
        RetryPolicy,
        backoff_strategy=st.sampled_from(list(BackoffStrategy)[:3]),
        initial_delay_ms=delays_ms,
        max_delay_ms=delays_ms,
        jitter=st.booleans(),
    )
    | st.just(RetryPolicy.preset("reference"))
)
errors = st.none() | st.builds(
    JobError,
    message=st.text(max_size=20),
    type=st.text(min_size=1, max_size=10),
    stacktrace=st.none() | st.text(max_size=20),
)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    fields: dict[str, Any] = {
        "id": draw(st.uuids()),
        "job_type": draw(st.text(min_size=1, max_size=20)),
        "queue": draw(st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)),
        "args": draw(json_object),
        "priority": draw(st.sampled_from(list(Priority))),
        "status": draw(statuses),
        "retry_count": draw(st.integers(min_value=0, max_value=30)),
        "max_retries": draw(st.integers(min_value=0, max_value=25)),
        "tenant_id": draw(st.none() | st.text(min_size=1, max_size=10)),
        "metadata": draw(json_object),
        "created_at": draw(opt_dt),
        "updated_at": draw(opt_dt),
        "execute_at": draw(opt_dt),
        "started_at": draw(opt_dt),
        "completed_at": draw(opt_dt),
        "result": draw(json_value),
        "error": draw(errors),
        "duration_ms": draw(st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)),
        "retry_policy": draw(policies),
    }
    return Job(**fields)


@given(job=jobs())
def test_to_dict_from_dict_round_trip(job: Job) -> None:
    data = job.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert Job.from_dict(data) == job
    assert Job.from_dict(json.loads(text)) == job


@given(
    job_type=st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{0,30}", fullmatch=True),
    args=json_object,
    priority=st.sampled_from(list(Priority)) | st.integers(min_value=0, max_value=9),
    max_retries=st.integers(min_value=0, max_value=25),
    now=aware_dt,
)
def test_create_job_preserves_input(
    job_type: str, args: dict[str, Any], priority: Any, max_retries: int, now: datetime
) -> None:
    job = create_job(
        {"job_type": job_type, "args": args, "priority": priority, "max_retries": max_retries},
        UUID(int=3),
        now=now,
    )
    assert job.job_type == job_type and job.args == args
    assert job.priority is Priority.parse(priority)
    assert job.max_retries == max_retries and job.retry_count == 0
    assert job.status is JobStatus.PENDING and job.created_at == now
    later = fail_job(start_job(job, now=now), {"message": "m", "type": "E"}, now + timedelta(1))
    assert later.priority is job.priority
