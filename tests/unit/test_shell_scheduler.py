"""``shell.scheduler``: SchedulerLoop passes over real Redis; a failed pass is logged, and
a started loop rides out a private Redis going down and loading."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

import boundary_celery
from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.core.job import JobStatus
from boundary_celery.redis_server import SLOW_LOADING_ARGS, RedisServer, free_port
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.jobs import Jobs
from boundary_celery.shell.scheduler import SchedulerLoop
from boundary_celery.testing import Sandbox, wait_for


class Beats:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def schedule_soon(jobs, queue: str, seconds: float = 1.0):
    # 1 s ahead: a first enqueue on a loaded machine (connect, script load) can take a
    # few hundred ms, and a job already due when published is queued, not scheduled
    # (a fresh-clone run failed here with 0.3 s).
    due = utcnow() + timedelta(seconds=seconds)
    jid = jobs.enqueue("t.sched", {"k": 1}, queue=queue, execute_at=due)
    assert jobs.scheduled_count() == 1 and jobs.queue_size(queue) == 0
    return jid, due


def test_interval_from_settings_or_argument(make_jobs):
    _, jobs = make_jobs(scheduler={"interval_ms": 250})
    assert SchedulerLoop(jobs).interval_s == 0.25
    assert SchedulerLoop(jobs, interval_ms=40).interval_s == 0.04


def test_one_pass_moves_a_due_job(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    jid, due = schedule_soon(jobs, q)
    beats = Beats()
    loop = SchedulerLoop(jobs, heartbeat=beats)

    loop.run(max_passes=1)  # not due yet
    assert (loop.moved_total, jobs.queue_size(q), jobs.scheduled_count()) == (0, 0, 1)
    assert jobs.find_job(jid).status is JobStatus.SCHEDULED

    wait_for(lambda: utcnow() > due, timeout=5, message="the due time")
    loop.run(max_passes=1)
    assert loop.moved_total == 1
    assert jobs.queue_size(q) == 1 and jobs.scheduled_count() == 0
    assert jobs.find_job(jid).status is JobStatus.PENDING
    assert beats.count == 2  # one beat per pass

    loop.run(max_passes=1)  # nothing left: the total stays
    assert loop.moved_total == 1 and jobs.queue_size(q) == 1


def test_run_once_returns_how_many_moved(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    _, due = schedule_soon(jobs, q)
    jobs.enqueue("t.sched", {"k": 2}, queue=q, execute_at=due)
    loop = SchedulerLoop(jobs)
    wait_for(lambda: utcnow() > due, timeout=5, message="the due time")
    assert loop.run_once() == 2
    assert loop.run_once() == 0
    assert loop.moved_total == 2 and jobs.queue_size(q) == 2


def test_started_loop_moves_jobs_until_stopped(sandbox, make_jobs):
    _, jobs = make_jobs()
    q = sandbox.queue()
    schedule_soon(jobs, q)
    loop = SchedulerLoop(jobs, interval_ms=20)
    loop.start()
    try:
        wait_for(lambda: jobs.queue_size(q) == 1, timeout=5, message="the job moved")
    finally:
        loop.stop()
    assert loop._thread is not None and not loop._thread.is_alive()
    assert loop.moved_total == 1


def test_worker_shutdown_ends_the_loop_the_runtime_step_asked_to_stop(sandbox, make_jobs):
    # The worker step only asks its loop to stop (no wait before the pool stops); the
    # worker_shutdown signal, sent after the pool stopped, waits for the thread, which
    # has closed its wake subscription by then.
    from celery import signals

    _, jobs = make_jobs()
    loop = SchedulerLoop(jobs)  # shipped interval: the thread sleeps on the wake channel

    class Worker:  # what the signal's handler reads of Celery's WorkController
        boundary_scheduler = loop

    loop.start()
    channel = jobs.store.keys.scheduler_wake
    wait_for(lambda: sandbox.redis.pubsub_numsub(channel)[0][1] == 1, timeout=5,
             message="the loop subscribed to the wake channel")
    loop.request_stop()
    signals.worker_shutdown.send(sender=Worker())
    assert loop._thread is not None and not loop._thread.is_alive()
    assert sandbox.redis.pubsub_numsub(channel)[0][1] == 0


def test_a_stopped_loop_makes_no_pass(make_jobs):
    _, jobs = make_jobs()
    beats = Beats()
    loop = SchedulerLoop(jobs, heartbeat=beats)
    loop.stopped.set()
    loop.run(max_passes=3)
    assert beats.count == 0


def test_a_failing_pass_is_logged_not_raised(sandbox, caplog):
    store = RedisJobStore("redis://127.0.0.1:1/0", prefix=sandbox.prefix, socket_timeout_s=0.2)
    jobs = Jobs(Celery("scheduler-down"), sandbox.settings(), store)
    beats = Beats()
    loop = SchedulerLoop(jobs, interval_ms=10, heartbeat=beats)
    with caplog.at_level(logging.WARNING, logger="boundary_celery.scheduler"):
        loop.run(max_passes=2)  # returns: the error does not escape
    failures = [r for r in caplog.records
                if r.name == "boundary_celery.scheduler" and "Scheduler pass failed" in r.message]
    # Redis away is expected: one warning line naming the error, no traceback.
    assert len(failures) == 2
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
    assert "ConnectionError" in failures[0].getMessage()
    assert beats.count == 2 and loop.moved_total == 0


def test_a_failing_heartbeat_is_logged_not_raised(make_jobs, caplog):
    _, jobs = make_jobs()

    def broken() -> None:
        raise OSError("heartbeat down")

    loop = SchedulerLoop(jobs, interval_ms=10, heartbeat=broken)
    with caplog.at_level(logging.ERROR, logger="boundary_celery.scheduler"):
        loop.run(max_passes=2)
    failures = [r for r in caplog.records if "heartbeat failed" in r.message]
    assert len(failures) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], OSError) for r in failures)


def test_the_started_loop_rides_out_redis_down_then_loading(caplog):
    port = free_port()
    box = Sandbox(url=f"redis://127.0.0.1:{port}/0")
    first = RedisServer(port=port).start()
    jobs = boundary_celery.install(Celery("scheduler-redis-away"), box.settings())
    # The test's reads and enqueues: its own app and client, not the loop's.
    reader = boundary_celery.install(Celery("scheduler-redis-away-reader"), box.settings())
    loop = SchedulerLoop(jobs, interval_ms=100)
    second = RedisServer(port=port, extra_args=SLOW_LOADING_ARGS)
    q = box.queue()
    caplog.set_level(logging.WARNING, logger="boundary_celery.scheduler")

    def failed(error: str) -> list[logging.LogRecord]:
        return [r for r in list(caplog.records)
                if "Scheduler pass failed" in r.getMessage() and error in r.getMessage()]

    def moves_a_job() -> None:
        before = reader.queue_size(q)
        reader.enqueue("t.sched", {"k": 1}, queue=q,
                       execute_at=utcnow() + timedelta(seconds=1))
        assert reader.scheduled_count() == 1  # scheduled, not queued (see schedule_soon)
        wait_for(lambda: reader.queue_size(q) == before + 1 and reader.scheduled_count() == 0,
                 timeout=10, message="the scheduled job moved")

    try:
        loop.start()
        moves_a_job()
        first.stop()  # down: connection refused until the next server starts
        wait_for(lambda: failed("ConnectionError"), timeout=10,
                 message="a failed pass while Redis is down")
        second.start()
        moves_a_job()
        second.restart_loading()  # loading until finish_loading
        wait_for(lambda: failed("BusyLoadingError"), timeout=10,
                 message="a failed pass while Redis loads")
        assert second.loading()
        second.finish_loading()
        moves_a_job()
        assert loop._thread is not None and loop._thread.is_alive()
        assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failed(""))
    finally:
        loop.stop()
        jobs.store.close()
        reader.store.close()
        first.stop()
        second.stop()
