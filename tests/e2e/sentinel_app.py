"""The Sentinel failover test's app: ``install(app)`` with the shipped defaults, its
Redis found through Sentinel (``REDIS_URL`` a ``sentinel://`` list and
``BOUNDARY_REDIS__SENTINEL_MASTER`` from the test). Each handler run appends
``<job id>`` to a per-process file under ``RUNS_DIR``, not to Redis, so runs are counted
across the failover."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

import boundary_celery
from boundary_celery import boundary_job, current_job

app = Celery("sentinel-e2e")
jobs = boundary_celery.install(app)


@boundary_job(name="sentinel.tick")
def tick(i: int) -> int:
    time.sleep(0.005)
    ctx = current_job()
    job_id = ctx.job_id if ctx else "?"
    line = f"{job_id}\n".encode()
    path = Path(os.environ["RUNS_DIR"]) / f"runs-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return i
