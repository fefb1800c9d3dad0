"""``shell.poison``: the failed job recorded for a message that cannot run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from boundary_celery.core.errors import InvalidTransitionError
from boundary_celery.core.job import JobStatus, create_job, start_job
from boundary_celery.core.priority import Priority
from boundary_celery.shell.poison import RAW_LIMIT, poison_job

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=3)


def poison(**kw):
    base = {"job_id": None, "job_type": "t.bad", "queue": "q1", "reason": "cannot decode",
            "error_type": "PoisonMessage", "now": NOW}
    return poison_job(**{**base, **kw})


@pytest.mark.parametrize("bad_id", [None, "", "not-a-uuid", "1234", "g" * 32])
def test_a_bad_id_gets_a_new_uuid(bad_id):
    first, second = poison(job_id=bad_id), poison(job_id=bad_id)
    assert isinstance(first.id, uuid.UUID) and first.id.version == 4
    assert first.id != second.id


def test_a_valid_id_is_kept_and_the_job_is_failed_with_the_reason():
    jid = uuid.uuid4()
    job = poison(job_id=str(jid), args={"a": 1}, priority=Priority.LOW)
    assert job.id == jid
    assert (job.job_type, job.queue, job.args, job.priority) == ("t.bad", "q1", {"a": 1},
                                                                 Priority.LOW)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.message, job.error.type) == ("cannot decode", "PoisonMessage")
    assert job.max_retries == 0 and job.retry_count == 0
    assert job.created_at == job.updated_at == job.completed_at == NOW
    assert job.metadata == {}


def test_defaults_for_a_message_without_a_type():
    job = poison(job_type=None)
    assert job.job_type == "unknown"
    assert job.args == {} and job.priority is Priority.NORMAL


def test_a_long_job_type_is_cut_to_200_characters():
    assert poison(job_type="x" * 500).job_type == "x" * 200


def test_raw_is_kept_up_to_the_limit():
    raw = "".join(chr(ord("a") + i % 26) for i in range(RAW_LIMIT + 1000))
    job = poison(raw=raw)
    assert job.metadata["raw"] == raw[:RAW_LIMIT]
    assert len(job.metadata["raw"]) == RAW_LIMIT
    exact = "y" * RAW_LIMIT
    assert poison(raw=exact).metadata == {"raw": exact}
    assert poison(raw="").metadata == {"raw": ""}
    assert "raw" not in poison(raw=None).metadata


def test_an_existing_job_keeps_its_fields_and_becomes_failed():
    existing = start_job(
        create_job({"job_type": "t.real", "queue": "q9", "args": {"n": 5}, "priority": "high",
                    "max_retries": 4, "tenant_id": "acme", "metadata": {"trace": "x"}},
                   uuid.uuid4(), T0).model_copy(update={"retry_count": 2}),
        T0 + timedelta(seconds=1),
    )
    job = poison(job_id=str(uuid.uuid4()), job_type="other", queue="elsewhere",
                 args={"ignored": True}, raw="raw text", existing=existing)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.message == "cannot decode"
    assert job.error.type == "PoisonMessage"
    assert job.completed_at == job.updated_at == NOW
    kept = ("id", "job_type", "queue", "args", "priority", "retry_count", "max_retries",
            "tenant_id", "created_at", "started_at")
    assert {f: getattr(job, f) for f in kept} == {f: getattr(existing, f) for f in kept}
    assert job.metadata == {"trace": "x", "raw": "raw text"}  # the message is kept too


def test_an_existing_completed_job_cannot_be_poisoned():
    done = create_job({"job_type": "t.real"}, uuid.uuid4(), T0).model_copy(
        update={"status": JobStatus.COMPLETED})
    with pytest.raises(InvalidTransitionError):
        poison(existing=done)
