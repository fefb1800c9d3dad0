"""Crash recovery by lease, with the shipped defaults (``lease_s`` 15, heartbeat 5 s).

A dead worker's job is delivered again within 30 s; a live worker's job never is,
however long it runs; a graceful shutdown hands back at once what it never started.
"""

from __future__ import annotations

import time

import pytest

from boundary_celery.core import JobStatus
from boundary_celery.testing import wait_for


def _status(jobs, job_id):
    job = jobs.find_job(job_id)
    return job.status if job else None


@pytest.mark.parametrize("lock_left", [False, True], ids=["plain", "sweep-lock-left"])
def test_sigkilled_workers_job_is_finished_by_the_other_within_60_s(
    sandbox, make_jobs, worker_factory, lock_left
):
    app, jobs = make_jobs()
    q = sandbox.queue()
    first, second = worker_factory([q]), worker_factory([q])
    job_id = jobs.enqueue("e2e.slow", {"key": "k", "seconds": 3}, queue=q)
    r = sandbox.redis
    wait_for(lambda: r.llen(f"{sandbox.prefix}:started:k") == 1, timeout=15)
    owner = jobs.store.record(job_id)["worker"]
    victim, survivor = (first, second) if owner == first.hostname else (second, first)
    assert owner == victim.hostname
    victim.kill()  # SIGKILL the worker and its pool child: a machine crash
    killed_at = time.monotonic()
    if lock_left:  # a sweep's lock whose SET reached Redis while its reply was lost
        expire = app.conf.broker_transport_options.get("unacked_mutex_expire", 300)
        r.set(sandbox.keys.unacked_mutex, "lost-reply", ex=expire)
    job = wait_for(lambda: (j := jobs.find_job(job_id)) and j.status is JobStatus.COMPLETED
                   and j, timeout=60, interval=0.2, message="the other worker finishes it")
    took = time.monotonic() - killed_at
    assert took < 60
    assert jobs.store.record(job_id)["worker"] == survivor.hostname
    assert r.llen(f"{sandbox.prefix}:done:k") == 1  # completed exactly once
    assert r.llen(f"{sandbox.prefix}:started:k") == 2  # the first attempt was cut short
    assert job.status is JobStatus.COMPLETED
    assert survivor.running
    # Came back by lease (15 s), not by a visibility timeout (an hour).
    assert "Lease lapsed; delivered again" in survivor.log_text()


def test_a_70_s_job_runs_once_while_a_second_worker_idles(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])
    worker_factory([q])
    job_id = jobs.enqueue("e2e.slow", {"key": "long", "seconds": 70}, queue=q)
    r = sandbox.redis
    wait_for(lambda: _status(jobs, job_id) is JobStatus.COMPLETED, timeout=110, interval=0.5,
             message="the 70 s job completes")
    assert r.llen(f"{sandbox.prefix}:started:long") == 1  # never delivered again
    assert r.llen(f"{sandbox.prefix}:done:long") == 1
    assert jobs.store.record(job_id)["attempts"] == "1"


def test_graceful_shutdown_hands_back_reserved_jobs_at_once(sandbox, make_jobs, worker_factory):
    # About a setting: with a prefetch of 4 the worker holds jobs it has not started.
    _, jobs = make_jobs()
    q = sandbox.queue()
    env = {"BOUNDARY_WORKERS__PREFETCH_MULTIPLIER": "4"}
    first = worker_factory([q], env=env)
    running = jobs.enqueue("e2e.slow", {"key": "run", "seconds": 3}, queue=q)
    waiting = [jobs.enqueue("e2e.record", {"tag": f"w{i}"}, queue=q) for i in range(3)]
    r = sandbox.redis
    wait_for(lambda: r.llen(f"{sandbox.prefix}:started:run") == 1, timeout=15)
    wait_for(lambda: r.zcard(sandbox.keys.unacked_index) == 4, timeout=10,
             message="the worker holds the running job and three more")
    first.stop(timeout=30)  # SIGTERM: warm shutdown, the running job finishes
    assert _status(jobs, running) is JobStatus.COMPLETED
    assert r.llen(f"{sandbox.prefix}:done:run") == 1
    # The three it never started are back in the queue at once, not after a lease.
    assert r.zcard(sandbox.keys.unacked_index) == 0
    assert jobs.queue_size(q) == 3
    started = time.monotonic()
    worker_factory([q])
    for job_id in waiting:
        wait_for(lambda jid=job_id: _status(jobs, jid) is JobStatus.COMPLETED, timeout=10)
    assert time.monotonic() - started < 10
    assert sorted(r.lrange(f"{sandbox.prefix}:order", 0, -1)) == ["w0", "w1", "w2"]
