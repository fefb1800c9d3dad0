"""Delayed jobs and the scheduler: timing, exactly-once with concurrent schedulers, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from boundary_celery.adapters.redis_keys import list_keys
from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for
from tests.conftest import ROOT


def _queued_ids(sandbox, queue):
    r = sandbox.redis
    ids = []
    for key in list_keys(queue):
        ids.extend(json.loads(m)["headers"]["id"] for m in r.lrange(key, 0, -1))
    return ids


def _scheduler(sandbox, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.e2e.jobs_app", "boundary", "scheduler",
         "--interval-ms", "50", *extra],
        env=sandbox.env(BOUNDARY_SCHEDULER__BATCH_SIZE="50"), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def test_scheduled_job_waits_then_runs_within_interval(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])  # embedded scheduler, shipped defaults: wakes for the due time
    execute_at = datetime.now(UTC) + timedelta(seconds=2)
    job_id = jobs.schedule("e2e.slow", {"key": "s", "seconds": 0}, execute_at=execute_at,
                           queue=q, priority="high")
    assert jobs.find_job(job_id).status is JobStatus.SCHEDULED
    assert jobs.queue_size(q) == 0 and jobs.scheduled_count() == 1

    r = sandbox.redis
    started = float(wait_for(lambda: r.lindex(f"{sandbox.prefix}:started:s", 0), timeout=10))
    assert started >= execute_at.timestamp()
    assert started <= execute_at.timestamp() + 0.1 + 1.0
    job = wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is JobStatus.COMPLETED
                   and j, timeout=5)
    assert job.priority.value == "high" and job.execute_at is not None


def test_celery_eta_goes_to_the_scheduler_not_to_the_worker(sandbox, make_jobs):
    app, jobs = make_jobs()
    q = sandbox.queue()

    def slow(key: str, seconds: float) -> str:
        return key

    jobs.register_handler("e2e.slow", slow)
    res = app.tasks["e2e.slow"].apply_async(kwargs={"key": "x", "seconds": 0}, countdown=30,
                                            queue=q)
    assert jobs.scheduled_count() == 1 and jobs.queue_size(q) == 0
    assert sandbox.redis.zscore(sandbox.keys.scheduled, res.id) is not None


def test_two_schedulers_publish_each_due_job_exactly_once(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    procs = [_scheduler(sandbox), _scheduler(sandbox)]
    try:
        for p in procs:  # both loops run before the jobs are sent, so both race for them
            assert p.stderr is not None
            lines: list[str] = []
            while len(lines) < 20 and (line := p.stderr.readline().decode()):
                lines.append(line)
                if "boundary scheduler started" in line:
                    break
            assert "boundary scheduler started" in "".join(lines), lines
        # One enqueue_many sends the 500 in 0.1-0.5 s (one by one: 1.0-1.4 s), well
        # within the 2 s before they are due: every one is scheduled (asserted).
        soon = datetime.now(UTC) + timedelta(seconds=2)
        ids = set(jobs.enqueue_many([{"job_type": "e2e.record", "args": {"tag": str(i)},
                                      "execute_at": soon, "queue": q} for i in range(500)]))
        assert jobs.scheduled_count() == 500 and jobs.queue_size(q) == 0
        wait_for(lambda: jobs.scheduled_count() == 0, timeout=20, message="all moved")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)
    queued = _queued_ids(sandbox, q)
    assert len(queued) == 500 and set(queued) == ids
    assert sandbox.redis.hlen(sandbox.keys.scheduled_messages) == 0
    assert all(jobs.find_job(i).status is JobStatus.PENDING for i in list(ids)[:20])


def test_scheduler_killed_while_moving_loses_nothing(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    n = 20_000  # one scheduler moves them in about 0.35 s: a window to kill it in
    r = sandbox.redis
    # Fill the scheduled set with pipelined publishes (enqueue_many), 500 at a time, each
    # batch due 2 s after it is sent: every job is held by the scheduler, none is due at
    # publish (a job already due goes straight to its queue). Scheduled one by one (about
    # 1 ms each), most were due before they were sent: 2,394 of 20,000 were scheduled,
    # 17,606 went straight to the queue.
    ids: list[str] = []
    due = datetime.now(UTC)
    for start in range(0, n, 500):
        due = datetime.now(UTC) + timedelta(seconds=2)
        ids += jobs.enqueue_many([{"job_type": "e2e.record", "args": {"tag": str(i)},
                                   "execute_at": due, "queue": q}
                                  for i in range(start, min(n, start + 500))])
    assert jobs.scheduled_count() == n and jobs.queue_size(q) == 0
    wait_for(lambda: datetime.now(UTC) > due, timeout=10)
    victim = _scheduler(sandbox)
    wait_for(lambda: 0 < jobs.queue_size(q) < n, timeout=15, interval=0.001,
             message="scheduler is moving")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    moved_before = jobs.queue_size(q)
    assert 0 < moved_before < n, "killed too late to prove anything"
    assert jobs.scheduled_count() == n - moved_before  # nothing lost by the kill itself
    finisher = _scheduler(sandbox)
    try:
        wait_for(lambda: jobs.scheduled_count() == 0, timeout=30)
    finally:
        finisher.send_signal(signal.SIGTERM)
        finisher.wait(10)
    queued = _queued_ids(sandbox, q)
    assert len(queued) == n and set(queued) == set(ids)
    assert r.hlen(sandbox.keys.scheduled_messages) == 0
