"""Redis restarted (AOF, ``appendfsync always``) in the middle of a drain, with the
shipped defaults: every job runs once, every record reads completed, a scheduled job
still runs, and the workers ride it out without exiting.

Two restarts: an operator's (SIGTERM: Redis sends the replies it owes, then exits) and
a crash (SIGKILL: a claim can reach the AOF while its reply never leaves Redis; the
claimed message is unacked under a lease no worker renews, and the sweep delivers it
again)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.core import JobStatus
from boundary_celery.redis_server import RedisServer
from boundary_celery.shell.clock import utcnow
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

APP = "tests.e2e.outcomes_app"
JOBS = 600


@pytest.fixture
def aof_redis():
    server = RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_redis_restart_mid_drain_loses_and_duplicates_nothing(aof_redis, crash: bool):
    box = Sandbox(url=aof_redis.url)
    q = box.queue()
    app = Celery("restart-test")
    jobs = boundary_celery.install(app, box.settings())
    workers = [WorkerProcess(APP, box.env(), [q], concurrency=2, cwd=ROOT).start()
               for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        pids = [w.proc.pid for w in workers]
        later = jobs.schedule("outcomes.tick", {"i": -1}, queue=q,
                              execute_at=utcnow() + timedelta(seconds=6))
        ids = [jobs.enqueue("outcomes.tick", {"i": i}, queue=q) for i in range(JOBS)]
        wait_for(lambda: jobs.queue_stats(q).succeeded_total >= 100, timeout=60,
                 message="the drain is under way")
        aof_redis.restart(down_s=2, crash=crash)  # stopped mid-drain, back with its AOF
        try:
            done = wait_for(
                lambda: (s := jobs.queue_stats(q)).succeeded_total >= JOBS + 1 and s,
                timeout=90, interval=0.5, message="every job completes after the restart")
        except AssertionError:
            left = {i: jobs.find_job(i) for i in [*ids, later]}
            left = {i: j.status.value if j else None for i, j in left.items()
                    if j is None or j.status is not JobStatus.COMPLETED}
            raise AssertionError(f"not completed: {left}; queue {jobs.queue_size(q)}; "
                                 f"unacked {jobs.store.lease_ages()}") from None
        statuses = [jobs.find_job(i).status for i in [*ids, later]]
        assert statuses.count(JobStatus.COMPLETED) == JOBS + 1
        assert done.succeeded_total == JOBS + 1  # none completed twice
        assert jobs.dlq_size() == 0
        assert [w.running for w in workers] == [True, True]
        assert [w.proc.pid for w in workers] == pids  # never restarted
    finally:
        for worker in workers:
            worker.begin_stop()
        for worker in workers:
            worker.stop()
        jobs.store.close()
