"""``shell.wire``: the ``boundary`` header and the transient publish-time headers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boundary_celery.core.job import Job, create_job
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.shell import wire
from boundary_celery.shell.clock import epoch_ms, utcnow

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def plain_job(**update: object) -> Job:
    job = create_job({"job_type": "t.wire", "queue": "q1", "priority": "high",
                      "max_retries": 4}, uuid.uuid4(), T0)
    return job.model_copy(update=update) if update else job


def test_meta_of_a_plain_job_has_only_the_required_fields():
    job = plain_job(retry_count=2)
    assert wire.message_meta(job) == {"q": "q1", "p": "high", "rc": 2, "mr": 4}


def test_meta_carries_tenant_metadata_policy_and_no_handler_since():
    policy = RetryPolicy(initial_delay_ms=250, max_delay_ms=900)
    job = plain_job(tenant_id="acme", metadata={"k": [1, 2]}, retry_policy=policy)
    meta = wire.message_meta(job, no_handler_since=1234)
    assert meta["t"] == "acme"
    assert meta["m"] == {"k": [1, 2]}
    assert meta["rp"] == policy.model_dump(mode="json")
    assert RetryPolicy.from_config(meta["rp"]) == policy
    assert meta["nh"] == 1234
    assert "d" not in meta


def test_meta_lists_defaulted_fields_sorted():
    meta = wire.message_meta(plain_job(), defaulted=iter(["rp", "mr"]))
    assert meta["d"] == ["mr", "rp"]


def test_effective_meta_drops_the_guessed_fields_and_the_marker():
    policy = RetryPolicy(initial_delay_ms=10)
    meta = wire.message_meta(plain_job(retry_policy=policy), defaulted=["mr", "rp"])
    assert "mr" in meta and "rp" in meta
    effective = wire.effective_meta(meta)
    assert effective == {"q": "q1", "p": "high", "rc": 0}
    assert "d" in meta and "mr" in meta, "the received header itself is left untouched"


def test_effective_meta_keeps_fields_that_were_not_guessed():
    meta = wire.message_meta(plain_job(), defaulted=["rp"])  # rp absent: nothing to drop
    assert wire.effective_meta(meta) == {"q": "q1", "p": "high", "rc": 0, "mr": 4}


def test_effective_meta_of_nothing_is_empty():
    assert wire.effective_meta(None) == {}
    assert wire.effective_meta({}) == {}


def test_headers_carry_meta_and_the_write_as_given_without_due_for_now():
    job = plain_job(tenant_id="acme")
    write = {"set": ["status", "pending"], "clear": ["result"], "count": "retried"}
    headers = wire.message_headers(job, write)
    assert set(headers) == {wire.META, wire.WRITE}
    assert headers[wire.META] == wire.message_meta(job)
    assert headers[wire.WRITE] == write
    assert headers[wire.WRITE] is not write  # a copy: the caller's dict is not shared


def test_headers_pass_no_handler_since_and_defaulted_into_meta():
    headers = wire.message_headers(plain_job(), {}, no_handler_since=77, defaulted=["mr"])
    assert headers[wire.META]["nh"] == 77
    assert headers[wire.META]["d"] == ["mr"]


def test_due_header_only_for_a_future_due_time():
    future = utcnow() + timedelta(minutes=5)
    past = utcnow() - timedelta(seconds=1)
    job = plain_job()
    assert wire.message_headers(job, {}, due=future)[wire.DUE] == epoch_ms(future)
    assert wire.DUE not in wire.message_headers(job, {}, due=past)
    assert wire.DUE not in wire.message_headers(job, {})


def test_due_defaults_to_the_jobs_execute_at():
    future = utcnow() + timedelta(minutes=5)
    assert wire.message_headers(plain_job(execute_at=future), {})[wire.DUE] == epoch_ms(future)
    past = plain_job(execute_at=utcnow() - timedelta(minutes=5))
    assert wire.DUE not in wire.message_headers(past, {})


def test_explicit_due_overrides_execute_at():
    later = utcnow() + timedelta(hours=1)
    sooner = utcnow() + timedelta(minutes=1)
    headers = wire.message_headers(plain_job(execute_at=later), {}, due=sooner)
    assert headers[wire.DUE] == epoch_ms(sooner)
    # a requeue (due=now) of a job whose execute_at is future is published at once
    assert wire.DUE not in wire.message_headers(plain_job(execute_at=later), {}, due=utcnow())


def test_transient_headers_are_write_and_due_only():
    assert frozenset({wire.WRITE, wire.DUE}) == wire.TRANSIENT
    assert wire.META not in wire.TRANSIENT and wire.VERDICT not in wire.TRANSIENT
