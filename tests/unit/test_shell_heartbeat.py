"""``shell.heartbeat``: a worker's name in the store's worker set (real Redis); the
heartbeat thread rides out a private Redis going down and loading."""

from __future__ import annotations

import logging
import time

from celery import Celery

import boundary_celery
from boundary_celery.redis_server import SLOW_LOADING_ARGS, RedisServer, free_port
from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.heartbeat import Heartbeat
from boundary_celery.testing import Sandbox, wait_for

WORKER = "w-heartbeat@localhost"


def test_settings_give_interval_and_ttl(make_jobs):
    _, jobs = make_jobs(workers={"heartbeat_interval_s": 2})
    hb = Heartbeat(jobs, WORKER)
    assert hb.every_s == 2
    assert hb.ttl_ms == 6000


def test_first_call_beats_and_counts_the_worker(sandbox, make_jobs):
    _, jobs = make_jobs()
    hb = Heartbeat(jobs, WORKER)
    assert jobs.job_stats().active_workers == 0
    before = epoch_ms(utcnow())
    hb()
    after = epoch_ms(utcnow())
    score = sandbox.redis.zscore(sandbox.keys.workers, WORKER)
    assert score is not None and before <= score <= after
    assert jobs.job_stats().active_workers == 1


def test_two_calls_in_a_row_write_once(sandbox, make_jobs):
    _, jobs = make_jobs(workers={"heartbeat_interval_s": 1})  # a test about the interval
    r, key = sandbox.redis, sandbox.keys.workers
    hb = Heartbeat(jobs, WORKER)
    hb()
    first = r.zscore(key, WORKER)
    assert first is not None
    # Mark the entry: a second write would replace the marker with the current time.
    r.zadd(key, {WORKER: first - 1})
    hb()
    assert r.zscore(key, WORKER) == first - 1
    # Gone from the set: a call within the interval does not bring it back.
    r.zrem(key, WORKER)
    hb()
    assert r.zscore(key, WORKER) is None
    assert jobs.job_stats().active_workers == 0


def test_beats_again_once_the_interval_has_passed(sandbox, make_jobs):
    _, jobs = make_jobs(workers={"heartbeat_interval_s": 1})  # a test about the interval
    r, key = sandbox.redis, sandbox.keys.workers
    hb = Heartbeat(jobs, WORKER)
    hb()
    first = r.zscore(key, WORKER)
    r.zrem(key, WORKER)
    start = time.monotonic()

    def beat_seen() -> float | None:
        hb()
        return r.zscore(key, WORKER)

    second = wait_for(beat_seen, timeout=5, interval=0.02, message="the next beat")
    assert second - first >= 1000
    assert time.monotonic() - start >= 0.5  # not the call right after the first beat
    assert jobs.job_stats().active_workers == 1


def test_a_beat_forgets_workers_silent_for_three_intervals(sandbox, make_jobs):
    _, jobs = make_jobs(workers={"heartbeat_interval_s": 1})  # ttl = 3 s
    r, key = sandbox.redis, sandbox.keys.workers
    now_ms = epoch_ms(utcnow())
    r.zadd(key, {"dead@localhost": now_ms - 10_000, "quiet@localhost": now_ms - 1_000})
    Heartbeat(jobs, WORKER)()
    assert r.zscore(key, "dead@localhost") is None
    assert r.zscore(key, "quiet@localhost") == now_ms - 1_000
    assert jobs.job_stats().active_workers == 2


def test_stop_removes_only_this_worker(sandbox, make_jobs):
    _, jobs = make_jobs()
    r, key = sandbox.redis, sandbox.keys.workers
    mine, other = Heartbeat(jobs, WORKER), Heartbeat(jobs, "other@localhost")
    mine()
    other()
    assert jobs.job_stats().active_workers == 2
    mine.stop()
    assert r.zscore(key, WORKER) is None
    assert r.zscore(key, "other@localhost") is not None
    assert jobs.job_stats().active_workers == 1


def test_a_beat_renews_the_leases_it_is_given_and_never_revives_an_acked_one(
    sandbox, make_jobs
):
    _, jobs = make_jobs()
    r, key = sandbox.redis, sandbox.keys.unacked_index
    old = time.time() - 100
    r.zadd(key, {"held": old, "someone-elses": old})
    hb = Heartbeat(jobs, WORKER, leases=lambda: ["held", "acked-meanwhile"])
    hb()
    ages = jobs.store.lease_ages()
    assert ages["held"] < 5  # renewed now
    assert ages["someone-elses"] > 99  # not this worker's: left to lapse
    assert "acked-meanwhile" not in ages  # XX: an acked delivery is not re-added


def warnings_naming(caplog, text: str, error: str) -> list[logging.LogRecord]:
    return [r for r in list(caplog.records) if text in r.getMessage() and error in r.getMessage()]


def test_the_heartbeat_thread_rides_out_redis_down_then_loading(caplog):
    port = free_port()
    box = Sandbox(url=f"redis://127.0.0.1:{port}/0")
    first = RedisServer(port=port).start()
    app = Celery("heartbeat-redis-away")
    jobs = boundary_celery.install(app, box.settings(workers={"heartbeat_interval_s": 1}))
    hb = Heartbeat(jobs, WORKER)
    second = RedisServer(port=port, extra_args=SLOW_LOADING_ARGS)
    caplog.set_level(logging.WARNING, logger="boundary_celery.worker")
    r, key = box.redis, box.keys.workers

    def beat_seen() -> bool:
        r.zrem(key, WORKER)  # a beat after this one puts it back
        return wait_for(lambda: r.zscore(key, WORKER) is not None, timeout=10,
                        message="a beat")

    try:
        hb.start()
        beat_seen()
        first.stop()  # down: connection refused until the next server starts
        wait_for(lambda: warnings_naming(caplog, "Heartbeat failed", "ConnectionError"),
                 timeout=10, message="a failed beat while Redis is down")
        second.start()
        beat_seen()
        second.restart_loading()  # loading until finish_loading
        wait_for(lambda: warnings_naming(caplog, "Heartbeat failed", "BusyLoadingError"),
                 timeout=10, message="a failed beat while Redis loads")
        assert second.loading()
        second.finish_loading()
        beat_seen()
        assert hb._thread is not None and hb._thread.is_alive()
        failed = warnings_naming(caplog, "Heartbeat failed", "")
        assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failed)
    finally:
        hb._stopped.set()
        if hb._thread is not None:
            hb._thread.join(5)
        jobs.store.close()
        r.close()
        first.stop()
        second.stop()
