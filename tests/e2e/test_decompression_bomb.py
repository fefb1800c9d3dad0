"""A compressed task message that inflates far past ``[store] max_message_bytes`` (a
decompression bomb, issue 18) is dead-lettered by a real worker without ever being
inflated in its main process: the worker keeps its PID and its memory, and goes on
running jobs; a normal compressed job still runs.

The producer is a test app whose own ``[store] max_args_bytes`` is raised (a producer
with other settings, or another client, can publish such a message): the worker, with
the shipped defaults, is what is tested. Memory is the worker main process's peak RSS
(``VmHWM`` of /proc/<pid>/status) against its RSS before the bomb: the bound is on
memory, not on time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery, Signature

from boundary_celery.core.job import Job, JobStatus
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.e2e.bomb_app"
MiB = 1 << 20
BOMB_BYTES = 64 * MiB
#: How much the worker's main process may grow while it refuses the bomb (measured:
#: 9 MB with the bound; 283 MB without it, where the 64 MiB job ran).
GROWTH_BYTES = 100 * 1000 * 1000


def memory(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == field:
                amount, unit = value.split()
                assert unit == "kB"
                return int(amount) * 1024
    raise AssertionError(f"no {field} for {pid}")


def producer(make_jobs: Callable[..., tuple[Celery, Jobs]],
             **store: Any) -> tuple[Jobs, Signature, Signature]:
    """The publishing app's jobs, and signatures of bomb_app's two tasks (sent by name)."""
    app, jobs = make_jobs(store=store)
    return jobs, app.signature("bomb.swallow"), app.signature("bomb.echo")


def status(jobs: Jobs, job_id: str) -> JobStatus | None:
    job = jobs.find_job(job_id)
    return job.status if job else None


def completes(jobs: Jobs, job_id: str, what: str) -> None:
    wait_for(lambda: status(jobs, job_id) is JobStatus.COMPLETED, timeout=20, message=what)


def dead_lettered(jobs: Jobs, job_type: str, after: set[str]) -> Job | None:
    """A DLQ entry of ``job_type`` not among ``after`` (ids already there)."""
    return next((job for job in jobs.failed_jobs(20)
                 if job.job_type == job_type and str(job.id) not in after), None)


def test_a_decompression_bomb_is_dead_lettered_and_the_worker_stays_small(
        sandbox: Sandbox, make_jobs: Callable[..., tuple[Celery, Jobs]],
        worker_factory: Callable[..., WorkerProcess]) -> None:
    queue = sandbox.queue("bomb")
    worker = worker_factory([queue], APP)
    assert worker.proc is not None
    pid = worker.proc.pid
    jobs, swallow, echo = producer(make_jobs, max_args_bytes=2 * BOMB_BYTES)

    # A normal compressed job runs (and warms the worker up before measuring it).
    first = echo.apply_async(("before",), queue=queue, compression="zlib")
    completes(jobs, first.id, "a normal compressed job completes")
    before = memory(pid, "VmRSS")
    log_start = len(worker.log_text())

    blob = "a" * BOMB_BYTES
    bomb = swallow.apply_async((blob,), queue=queue, compression="zlib")
    del blob

    dead = wait_for(lambda: dead_lettered(jobs, "bomb.swallow", set()), timeout=20,
                    message="the bomb is dead-lettered")
    assert dead is not None
    assert dead.error is not None and dead.error.type == "PoisonMessageError"
    assert dead.error.message == (
        "undeliverable broker message: body: inflates ('application/x-gzip') to more than "
        "8388608 bytes, over the [store] max_message_bytes limit of 8388608 bytes")
    assert dead.queue == queue
    assert dead.metadata["raw"].startswith('{"body": "eJ')  # as received: zlib, base64
    assert str(dead.id) == bomb.id  # the producer's record is the DLQ entry: none pending
    assert status(jobs, bomb.id) is JobStatus.FAILED

    # The worker goes on: same process, a later normal compressed job runs.
    after = echo.apply_async(("after",), queue=queue, compression="zlib")
    completes(jobs, after.id, "a job after the bomb completes")
    assert sandbox.redis.lrange(f"{sandbox.prefix}:echo", 0, -1) == ["before", "after"]
    assert worker.running and worker.proc.pid == pid
    peak = memory(pid, "VmHWM")
    assert peak - before < GROWTH_BYTES, (before, peak)
    log = worker.log_text()[log_start:]
    assert "Unrecoverable error" not in log
    assert "Delivering a message failed" not in log  # the envelope check refused it


def test_the_bound_is_the_workers_max_message_bytes_setting(
        sandbox: Sandbox, make_jobs: Callable[..., tuple[Celery, Jobs]],
        worker_factory: Callable[..., WorkerProcess]) -> None:
    """A worker with ``BOUNDARY_STORE__MAX_MESSAGE_BYTES=1000000`` refuses a compressed
    body of about 1.01 MB that the default bound (8 MiB) lets through."""
    queue = sandbox.queue("bound")
    worker_factory([queue], APP, env={"BOUNDARY_STORE__MAX_MESSAGE_BYTES": "1000000"})
    jobs, swallow, _ = producer(make_jobs)  # the shipped max_args_bytes (1 MiB)
    sent = swallow.apply_async(("a" * 1_010_000,), queue=queue, compression="zlib")

    def settled() -> Job | JobStatus | None:
        done = status(jobs, sent.id) is JobStatus.COMPLETED
        return JobStatus.COMPLETED if done else dead_lettered(jobs, "bomb.swallow", set())

    outcome = wait_for(settled, timeout=20, message="the message ran or was dead-lettered")
    assert isinstance(outcome, Job), "ran: the worker's bound is not the setting"
    assert outcome.error is not None
    assert outcome.error.message.endswith(
        "over the [store] max_message_bytes limit of 1000000 bytes"), outcome.error.message
