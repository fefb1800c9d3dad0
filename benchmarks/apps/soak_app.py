"""The soak run's app (``python -m benchmarks.soak``): ``install(app)`` with the shipped
defaults on the soak's private Redis, and two job types that note every handler run.

Environment (set by the harness): ``SOAK_REDIS_URL`` (the private Redis) and
``SOAK_RUNS_DIR`` (where each process appends its notes). Notes go to a file, not to
Redis, so handler runs are counted even across a Redis crash or pause. One line per
event, written with one ``os.write`` on an ``O_APPEND`` descriptor (atomic for lines this
short), to ``<worker>-<pid>.log``::

    <job id> <start|ok|fail> <worker hostname> <pid> <epoch seconds>

``start`` is written when the handler begins; ``ok`` after the handler's work, when it
returns (before the worker records the completion and acks); ``fail`` when the flaky job
raises on its first attempt. A pool child runs one job at a time, so in one file a
``start`` and the next ``ok``/``fail`` of the same id are one run, [start, end]; a
``start`` with no end is a run cut by the child's death.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery, current_task

import boundary_celery
from boundary_celery import boundary_job, current_job
from boundary_celery.settings import load_settings

QUEUE = "soak"
WORK = "soak.work"
FLAKY = "soak.flaky"
KEY_PREFIX = "soak"
#: The flaky job's policy: a constant 1 s between attempts, at most 3 retries.
FLAKY_POLICY: dict[str, Any] = {"backoff_strategy": "constant", "initial_delay_ms": 1000}


def redis_url() -> str:
    url = os.environ.get("SOAK_REDIS_URL", "")
    if not url:
        raise RuntimeError("SOAK_REDIS_URL is not set (run python -m benchmarks.soak)")
    return url


app = Celery("soak", broker=redis_url())
# Shipped defaults (config/dev.toml, lease, heartbeat, scheduler untouched); only where.
settings = load_settings(redis={"url": redis_url()}, store={"key_prefix": KEY_PREFIX})
jobs = boundary_celery.install(app, settings)

_notes: dict[str, int] = {}  # pid -> fd, so a forked pool child opens its own file


def _fd() -> int:
    pid = str(os.getpid())
    fd = _notes.get(pid)
    if fd is None:
        runs = Path(os.environ.get("SOAK_RUNS_DIR", "."))
        host = str(getattr(current_task.request, "hostname", None) or "unknown")
        name = runs / f"{host.split('@')[0]}-{pid}.log"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _notes.clear()
        _notes[pid] = fd
    return fd


def note(kind: str) -> None:
    """Append ``<job id> <kind> <worker> <pid> <time>`` to this process's notes file."""
    job = current_job()
    jid = job.job_id if job is not None else str(current_task.request.id)
    host = str(getattr(current_task.request, "hostname", None) or "unknown")
    os.write(_fd(), f"{jid} {kind} {host} {os.getpid()} {time.time():.6f}\n".encode())


@boundary_job(name=WORK, queue=QUEUE)
def work(ms: int) -> int:
    """A few milliseconds of work."""
    note("start")
    time.sleep(ms / 1000)
    note("ok")
    return ms


@boundary_job(name=FLAKY, queue=QUEUE, max_retries=3, retry_policy=FLAKY_POLICY)
def flaky(ms: int) -> int:
    """Fails on its first attempt (retry count 0), succeeds on the next."""
    note("start")
    time.sleep(ms / 1000)
    job = current_job()
    if job is not None and job.retry_count == 0:
        note("fail")
        raise RuntimeError("soak: fails on its first attempt")
    note("ok")
    return ms
