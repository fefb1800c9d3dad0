"""``shell.wire``: the ``boundary`` header and the transient publish-time headers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boundary_celery.core.job import Job, create_job
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.shell import wire
from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.publishing import finish_headers

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def plain_job(**update: object) -> Job:
    job = create_job({"job_type": "t.wire", "queue": "q1", "priority": "high",
                      "max_retries": 4}, uuid.uuid4(), T0)
    return job.model_copy(update=update) if update else job


def test_meta_of_a_plain_job_has_only_the_required_fields():
    job = plain_job(retry_count=2)
    # priority and retry count travel in Celery's own fields (priority, retries)
    assert wire.message_meta(job) == {"q": "q1", "mr": 4}


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
    assert effective == {"q": "q1"}
    assert "d" in meta and "mr" in meta, "the received header itself is left untouched"


def test_effective_meta_keeps_fields_that_were_not_guessed():
    meta = wire.message_meta(plain_job(), defaulted=["rp"])  # rp absent: nothing to drop
    assert wire.effective_meta(meta) == {"q": "q1", "mr": 4}


def test_effective_meta_of_nothing_is_empty():
    assert wire.effective_meta(None) == {}
    assert wire.effective_meta({}) == {}


# -- publishing.finish_headers: what every job message carries besides Celery's own ----------


def _jobs():
    from celery import Celery

    import boundary_celery
    from boundary_celery.settings import BoundarySettings

    return boundary_celery.install(Celery("wire"), BoundarySettings())


def test_finish_keeps_an_explicit_write_and_adds_meta_without_due_for_now():
    job = plain_job(tenant_id="acme")
    write = {"set": ["status", "pending"], "clear": ["result"], "count": "retried"}
    headers = {wire.WRITE: write}
    finish_headers(_jobs(), job, headers)
    assert headers[wire.META] == wire.message_meta(job)
    assert headers[wire.WRITE] == write
    assert wire.DUE not in headers and headers["eta"] is None


def test_finish_writes_a_new_record_for_a_first_attempt_and_a_retry_for_later_ones():
    jobs = _jobs()
    job = plain_job()
    first: dict[str, object] = {}
    finish_headers(jobs, job, first)
    assert first[wire.WRITE] == jobs.store.new_record(job)
    retry: dict[str, object] = {}
    finish_headers(jobs, plain_job(retry_count=2), retry)
    fields = dict(zip(retry[wire.WRITE]["set"][::2], retry[wire.WRITE]["set"][1::2],
                      strict=True))
    assert (fields["status"], fields["retry_count"]) == ("retrying", 2)
    assert retry[wire.WRITE]["count"] == "retried"


def test_finish_keeps_no_handler_since_and_defaulted_from_the_header():
    headers = {wire.META: {"nh": 77, "d": ["mr"]}}
    finish_headers(_jobs(), plain_job(), headers)
    assert headers[wire.META]["nh"] == 77
    assert headers[wire.META]["d"] == ["mr"]


def test_due_only_for_a_future_eta_which_celery_never_sees():
    jobs = _jobs()
    future = utcnow() + timedelta(minutes=5)
    later = {"eta": future.isoformat()}
    finish_headers(jobs, plain_job(), later)
    assert later[wire.DUE] == epoch_ms(future) and later["eta"] is None
    past = {"eta": (utcnow() - timedelta(seconds=1)).isoformat()}
    finish_headers(jobs, plain_job(), past)
    assert wire.DUE not in past and past["eta"] is None


def test_due_defaults_to_the_jobs_execute_at():
    jobs = _jobs()
    future = utcnow() + timedelta(minutes=5)
    headers: dict[str, object] = {}
    finish_headers(jobs, plain_job(execute_at=future), headers)
    assert headers[wire.DUE] == epoch_ms(future)
    stale: dict[str, object] = {}
    finish_headers(jobs, plain_job(execute_at=utcnow() - timedelta(minutes=5)), stale)
    assert wire.DUE not in stale


def test_an_explicit_eta_overrides_execute_at():
    later = utcnow() + timedelta(hours=1)
    sooner = utcnow() + timedelta(minutes=1)
    headers: dict[str, object] = {"eta": sooner.isoformat()}
    finish_headers(_jobs(), plain_job(execute_at=later), headers)
    assert headers[wire.DUE] == epoch_ms(sooner)
