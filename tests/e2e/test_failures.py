"""What cannot run is never lost: crashes, unknown job types, poison messages, bad input."""

from __future__ import annotations

import json
import uuid

import pytest

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import JobStatus
from boundary_celery.core.priority import PRIORITY_STEPS, Priority
from boundary_celery.testing import wait_for


def _status(jobs, job_id):
    job = jobs.find_job(job_id)
    return job.status if job else None


def test_worker_killed_mid_job_job_completes_exactly_once_with_priority(
    sandbox, make_jobs, worker_factory
):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker = worker_factory([q])
    job_id = jobs.enqueue("e2e.slow", {"key": "c", "seconds": 1.5}, queue=q, priority="critical")
    r = sandbox.redis
    wait_for(lambda: r.llen(f"{sandbox.prefix}:started:c") == 1, timeout=10)
    worker.kill()  # SIGKILL the worker and its pool child: a machine crash
    assert r.llen(f"{sandbox.prefix}:done:c") == 0
    assert _status(jobs, job_id) is JobStatus.RUNNING

    worker_factory([q])
    job = wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is JobStatus.COMPLETED
                   and j, timeout=40, message="redelivered job completes")
    assert r.llen(f"{sandbox.prefix}:done:c") == 1  # completed exactly once
    assert r.llen(f"{sandbox.prefix}:started:c") == 2  # first attempt was interrupted
    assert job.priority.value == "critical"
    assert jobs.store.record(job_id)["attempts"] == "2"


def test_duplicate_delivery_of_a_completed_job_does_not_run_again(
    sandbox, make_jobs, worker_factory
):
    _, jobs = make_jobs()
    q = sandbox.queue()
    job_id = jobs.enqueue("e2e.record", {"tag": "once"}, queue=q)
    r = sandbox.redis
    raw = r.lindex(list_key(q, Priority.NORMAL.celery), 0)  # as published (normal level)
    assert json.loads(raw)["headers"]["id"] == job_id
    worker = worker_factory([q])
    wait_for(lambda: _status(jobs, job_id) is JobStatus.COMPLETED, timeout=10)
    r.lpush(list_key(q, Priority.NORMAL.celery), raw)  # the broker delivers it a second time
    wait_for(lambda: "Skipping delivery" in worker.log_text(), timeout=10)
    assert r.lrange(f"{sandbox.prefix}:order", 0, -1) == ["once"]
    assert jobs.queue_stats(q).succeeded_total == 1


def test_unknown_job_type_is_rescheduled_then_dead_lettered(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], env={"BOUNDARY_STORE__NO_HANDLER_GRACE_S": "1",
                             "BOUNDARY_STORE__NO_HANDLER_RETRY_DELAY_MS": "300"})
    job_id = jobs.enqueue("e2e.not_deployed", {"x": 1}, queue=q, priority="high")
    job = wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is JobStatus.FAILED and j,
                   timeout=15, message="dead-lettered after the grace window")
    assert job.error.type == "NoHandlerError"
    assert "e2e.not_deployed" in job.error.message
    assert job.args == {"x": 1} and job.priority.value == "high"
    assert [j.id for j in jobs.failed_jobs()] == [job.id]
    # the worker keeps processing other jobs
    ok = jobs.enqueue("e2e.record", {"tag": "after"}, queue=q)
    wait_for(lambda: _status(jobs, ok) is JobStatus.COMPLETED, timeout=10)


def test_poison_messages_go_to_the_dlq_and_the_worker_keeps_running(
    sandbox, make_jobs, worker_factory
):
    _, jobs = make_jobs()
    q = sandbox.queue()
    r = sandbox.redis
    good = jobs.enqueue("e2e.record", {"tag": "good"}, queue=q)
    template = json.loads(r.lindex(list_key(q, Priority.NORMAL.celery), 0))
    r.delete(list_key(q, Priority.NORMAL.celery))
    pickled = json.loads(json.dumps(template))
    pickled["content-type"] = "application/x-python-serialize"
    pickled["headers"]["id"] = str(uuid.uuid4())
    bad_body = json.loads(json.dumps(template))
    bad_body["body"] = "!!! not base64 !!!"
    poisons = [b"this is not json", b"[1, 2, 3]", json.dumps(pickled), json.dumps(bad_body)]
    for p in poisons:
        r.lpush(q, p)
    r.lpush(list_key(q, Priority.NORMAL.celery), json.dumps(template))  # good job after poison
    worker_factory([q])

    wait_for(lambda: jobs.dlq_size() == len(poisons), timeout=15, message="all dead-lettered")
    wait_for(lambda: _status(jobs, good) is JobStatus.COMPLETED, timeout=10)
    dead = jobs.failed_jobs(10)
    assert {j.error.type for j in dead} == {"PoisonMessageError"}
    reasons = " | ".join(j.error.message for j in dead)
    assert "not a JSON object" in reasons or "undecodable" in reasons
    assert any("ContentDisallowed" in j.error.message or "x-python-serialize" in j.error.message
               for j in dead), reasons
    assert all(j.metadata.get("raw") for j in dead)  # the message is kept for inspection


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"priority": 12}, "priority"),
        ({"args": {"when": object()}}, "args"),
        ({"args": {"x": float("nan")}}, "args"),
        ({"max_retries": 99}, "max_retries"),
        ({"queue": "undeclared"}, "queue"),
        ({"job_type": "  "}, "job_type"),
    ],
)
def test_bad_input_fails_at_enqueue_and_writes_nothing(sandbox, make_jobs, options, field):
    _, jobs = make_jobs(store={"declared_queues": [sandbox.queue("declared")]})
    job_type = options.pop("job_type", "e2e.record")
    args = options.pop("args", {"tag": "x"})
    options.setdefault("queue", sandbox.queue("declared"))
    with pytest.raises(JobValidationError) as err:
        jobs.enqueue(job_type, args, **options)
    assert err.value.field == field
    assert field in str(err.value)
    r = sandbox.redis
    assert list(r.scan_iter(f"{sandbox.prefix}:*")) == []
    assert all(r.llen(k) == 0 for q in sandbox.queues for k in
               [list_key(q, s) for s in PRIORITY_STEPS])


def test_cancelled_job_of_an_unknown_type_stays_cancelled(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    job_id = jobs.enqueue("e2e.not_deployed", {"x": 1}, queue=q)
    assert jobs.cancel_job(job_id).status is JobStatus.CANCELLED
    worker = worker_factory([q])
    wait_for(lambda: jobs.queue_size(q) == 0, timeout=10, message="the message consumed")
    wait_for(lambda: "Skipping delivery" in worker.log_text(), timeout=10)
    assert _status(jobs, job_id) is JobStatus.CANCELLED  # not rescheduled for a handler
    assert jobs.scheduled_count() == 0
