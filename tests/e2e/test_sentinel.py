"""Redis Sentinel: a master, two replicas and three sentinels on loopback. A worker, the
producer and the admin app reach Redis through the sentinels; the master is SIGKILLed in
the middle of a drain while jobs are still being enqueued. After the failover every job
whose enqueue returned (``[redis] wait_replicas = 1``: acknowledged by the replica)
completes, a job scheduled before the kill and due after it runs (the worker's embedded
scheduler follows the new master too), and the worker never restarted."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from celery import Celery

import boundary_celery
from boundary_celery.redis_sentinel import MASTER_NAME, SentinelGroup
from boundary_celery.redis_server import free_port
from boundary_celery.shell.clock import utcnow
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

APP = "tests.e2e.sentinel_app"
BEFORE = 400  # enqueued before the kill; more follow while the master dies


def _completed(group: SentinelGroup, box: Sandbox, ids: list[str]) -> set[str]:
    client = group.current_master().client(decode_responses=True, socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(box.keys.job(job_id), "status")
        return {i for i, s in zip(ids, pipe.execute(), strict=True) if s == "completed"}
    finally:
        client.close()


def _admin_stats(port: int, token: str) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/admin/jobs/stats",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return dict(json.loads(answer.read()))


def test_failover_mid_drain_loses_no_acknowledged_job(tmp_path: Path) -> None:
    with SentinelGroup(replicas=2, sentinels=3) as group:
        redis_env = {"BOUNDARY_REDIS__SENTINEL_MASTER": MASTER_NAME,
                     "BOUNDARY_REDIS__WAIT_REPLICAS": "1"}
        box = Sandbox(url=group.url, sentinel_master=MASTER_NAME)
        q = box.queue()
        app = Celery("sentinel-test")
        jobs = boundary_celery.install(app, box.settings(redis={"wait_replicas": 1}))
        env = box.env(RUNS_DIR=tmp_path, **redis_env)
        worker = WorkerProcess(APP, env, [q], concurrency=2, cwd=ROOT).start()
        admin_port, token = free_port(), "sentinel-test-token"
        admin_log = (tmp_path / "admin.log").open("wb")
        admin_proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", APP, "boundary", "admin",
             "--port", str(admin_port)],
            env=box.env(BOUNDARY_ADMIN__TOKEN=token, **redis_env), cwd=ROOT,
            stdout=admin_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            worker.wait_ready()
            pid = worker.proc.pid if worker.proc else None
            stats = wait_for(lambda: _try(_admin_stats, admin_port, token), timeout=30,
                             message="the admin app answers through Sentinel")
            assert isinstance(stats, dict)
            later = str(jobs.schedule("sentinel.tick", {"i": -1}, queue=q,
                                      execute_at=utcnow() + timedelta(seconds=8)))
            acknowledged: list[str] = [later] + [
                str(jobs.enqueue("sentinel.tick", {"i": i}, queue=q)) for i in range(BEFORE)]
            failed: list[str] = []
            stop = threading.Event()

            def produce() -> None:  # goes on enqueueing through the failover
                i = BEFORE
                while not stop.is_set() and i < BEFORE + 2000:
                    try:
                        acknowledged.append(str(jobs.enqueue("sentinel.tick", {"i": i},
                                                             queue=q)))
                    except Exception as exc:  # the master is gone: not acknowledged
                        failed.append(repr(exc))
                        time.sleep(0.05)
                    i += 1
                    time.sleep(0.002)

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            wait_for(lambda: len(_runs(tmp_path)) >= 100, timeout=60,
                     message="the drain is under way")
            ran_before_kill = len(_runs(tmp_path))
            old = group.kill_master()
            new = group.wait_failover(old, timeout=30)
            enqueued_at_failover = len(acknowledged)
            wait_for(lambda: len(acknowledged) >= enqueued_at_failover + 50, timeout=30,
                     message="the producer enqueues on the new master")
            stop.set()
            producer.join(30)
            ids = list(acknowledged)
            assert ran_before_kill < BEFORE  # killed mid-drain
            assert later not in _runs(tmp_path)  # the scheduled job is due after the kill
            wait_for(lambda: len(_completed(group, box, ids)) == len(ids), timeout=120,
                     interval=0.5, message="every acknowledged job completes")
            runs = _runs(tmp_path)
            assert set(ids) <= runs
            print(f"failover {old} -> {new}: {len(ids)} acknowledged, {len(failed)} enqueues "
                  f"refused, {ran_before_kill} run before the kill, {len(runs)} run")
            assert worker.proc is not None and worker.proc.poll() is None
            assert worker.proc.pid == pid  # the same process rode the failover out
            with app.producer_or_acquire() as producer:  # still ours after the failover
                assert type(producer.connection.transport).__name__ == "SentinelTransport"
                assert producer.connection.transport_cls == "boundary-sentinel"
            after = _admin_stats(admin_port, token)  # the admin app followed the master
            assert isinstance(after, dict)
        finally:
            admin_proc.terminate()
            admin_proc.wait(15)
            admin_log.close()
            worker.stop()


def _try(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except OSError:
        return None


def _runs(runs_dir: Path) -> set[str]:
    seen: set[str] = set()
    for path in runs_dir.glob("runs-*.log"):
        seen.update(line for line in path.read_text().splitlines() if line)
    return seen
