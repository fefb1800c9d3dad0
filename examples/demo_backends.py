"""Where the demo's jobs run: Redis with a real Celery worker, or the in-memory fallback.

- :class:`RedisRunner`: jobs published through Celery to Redis (a given ``REDIS_URL`` with
  private queue names, or a throwaway server); a ``celery -A examples.app worker``
  subprocess runs them; :meth:`RedisRunner.delete_keys` erases what the demo wrote.
- :class:`MemoryRunner`: the same scenario on MemoryBackend + MemoryWorker, in this
  process, on the real clock (no Redis, no Celery worker).

Both offer what ``examples/demo.py`` drives (:class:`Runner`): enqueue the scenario, start
the worker, let it make progress, and read back rows, stats and the DLQ.
:func:`configure_env` must run before :func:`import_example` (the app reads its settings
from the environment when it is imported).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

from examples.demo_scenario import (
    QUEUES,
    SCENARIO,
    SCHEDULE_AHEAD_S,
    DemoError,
    Row,
    Spec,
    row_of,
)

ROOT = Path(__file__).resolve().parent.parent
WORKER_READY_TIMEOUT_S = 30.0


def configure_env(url: str, prefix: str) -> None:
    """Settings for this process and the worker; set before examples.app is imported."""
    os.environ.update(
        REDIS_URL=url,
        BOUNDARY_REDIS__URL=url,
        BOUNDARY_STORE__KEY_PREFIX=prefix,
        BOUNDARY_SCHEDULER__INTERVAL_MS="200",
        BOUNDARY_WORKERS__HEARTBEAT_INTERVAL_S="1",
    )


def import_example() -> ModuleType:
    """``examples.app`` (its Celery app and installed ``jobs``)."""
    import examples.app

    return examples.app


class Runner:
    """The operations the demo needs from a backend (Redis + Celery worker, or in-memory)."""

    mode: str = ""

    def __init__(self, example: ModuleType, console: Console) -> None:
        self.example = example
        self.console = console
        self.jobs = example.jobs
        self.ids: list[str] = []
        self.scheduled_ids: set[str] = set()

    def queue_name(self, logical: str) -> str:
        return logical

    def display_queue(self, actual: str) -> str:
        return actual

    def enqueue(self, spec: Spec) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def pump(self) -> None:
        """Let the backend make progress (the in-memory worker runs here); raise if it died."""

    def rows(self) -> list[Row]:
        raise NotImplementedError

    def stats(self) -> Any:
        raise NotImplementedError

    def dlq(self) -> list[Any]:
        raise NotImplementedError

    def enqueue_all(self) -> None:
        for spec in SCENARIO:
            jid = self.enqueue(spec)
            self.ids.append(jid)
            if spec.scheduled:
                self.scheduled_ids.add(jid)

    def build_job(self, spec: Spec) -> Any:
        """Validate ``spec`` into a Job with the handler's defaults (queue, priority, retries)."""
        task = self.example.app.tasks[spec.job_type]
        options: dict[str, Any] = {
            "queue": self.queue_name(getattr(task, "boundary_queue", None) or "default"),
        }
        if spec.priority is not None:
            options["priority"] = spec.priority
        if spec.scheduled:
            options["execute_at"] = datetime.now(UTC) + timedelta(seconds=SCHEDULE_AHEAD_S)
        return self.jobs.build_job(spec.job_type, spec.args, **options)


class RedisRunner(Runner):
    """Jobs published through Celery to Redis; a real worker subprocess runs them."""

    def __init__(self, example: ModuleType, console: Console, url: str, prefix: str,
                 private_queues: bool, mode: str) -> None:
        super().__init__(example, console)
        self.url = url
        self.prefix = prefix
        self.private_queues = private_queues
        self.mode = mode
        self.worker: Any = None

    def queue_name(self, logical: str) -> str:
        return f"{self.prefix}-{logical}" if self.private_queues else logical

    def display_queue(self, actual: str) -> str:
        return actual.removeprefix(f"{self.prefix}-") if self.private_queues else actual

    def enqueue(self, spec: Spec) -> str:
        job = self.build_job(spec)
        self.jobs.publish(job)
        return str(job.id)

    def start(self) -> None:
        from boundary_celery.testing import WorkerProcess

        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self.worker = WorkerProcess(
            "examples.app", env, [self.queue_name(q) for q in QUEUES], concurrency=2, cwd=ROOT,
        )
        started = time.monotonic()
        self.worker.start()
        try:
            self.worker.wait_ready(WORKER_READY_TIMEOUT_S)
        except AssertionError as exc:
            raise DemoError(f"the Celery worker did not start: {exc}\n"
                            f"{self.log_tail()}") from None
        self.console.print(f"[green]✓[/] worker [bold]{self.worker.hostname}[/] ready "
                           f"({time.monotonic() - started:.1f} s; "
                           f"queues {', '.join(QUEUES)}; concurrency 2)")

    def pump(self) -> None:
        if self.worker is not None and not self.worker.running:
            raise DemoError(f"the Celery worker exited (code {self.worker.proc.returncode})\n"
                            f"{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        if self.worker is None:
            return ""
        tail = self.worker.log_text().splitlines()[-lines:]
        if not tail:
            return "(the worker log is empty)"
        return "worker log (last lines):\n  " + "\n  ".join(tail)

    def rows(self) -> list[Row]:
        out = []
        for jid in self.ids:
            detail = self.jobs.job_detail(jid)
            if detail is None:
                raise DemoError(f"job {jid} has no record in Redis")
            job = detail.job
            out.append(row_of(job, detail.attempts,
                              self.display_queue(job.queue), jid in self.scheduled_ids))
        return out

    def stats(self) -> Any:
        return self.jobs.job_stats()

    def dlq(self) -> list[Any]:
        return list(self.jobs.failed_jobs(10))

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker.log_path.unlink(missing_ok=True)

    def delete_keys(self) -> int:
        """Delete this demo's keys: everything under the prefix, and its private queues."""
        from boundary_celery.adapters.redis_store import RedisJobStore

        queues = [self.queue_name(q) for q in QUEUES] if self.private_queues else []
        store = RedisJobStore(self.url, prefix=self.prefix)
        try:
            return store.erase(queues)
        finally:
            store.client.close()


class MemoryRunner(Runner):
    """The same scenario on MemoryBackend + MemoryWorker (no Redis, no Celery worker)."""

    mode = "in-memory adapter (MemoryBackend + MemoryWorker)"

    def __init__(self, example: ModuleType, console: Console) -> None:
        from boundary_celery.adapters.memory import MemoryBackend, MemoryWorker

        super().__init__(example, console)
        self.attempts: Counter[str] = Counter()
        self.backend = MemoryBackend(clock=lambda: datetime.now(UTC))
        for job_type in {spec.job_type for spec in SCENARIO}:
            task = example.app.tasks[job_type]
            self.backend.registry.register_handler(job_type, self._with_context(task.run))
        self.worker = MemoryWorker(self.backend, list(QUEUES), self.jobs.default_policy,
                                   clock=lambda: datetime.now(UTC))
        self.started = False

    def _with_context(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Give the handler its current_job(), as the Celery task does, and count attempts."""
        from boundary_celery.shell.context import JobContext, job_context

        def handler(**kwargs: Any) -> Any:
            job = self._running_job()
            self.attempts[str(job.id)] += 1
            ctx = JobContext(
                job_id=str(job.id), job_type=job.job_type, queue=job.queue,
                priority=job.priority, tenant_id=job.tenant_id, retry_count=job.retry_count,
                max_retries=job.max_retries, metadata=dict(job.metadata),
            )
            with job_context(ctx):
                return fn(**kwargs)

        return handler

    def _running_job(self) -> Any:
        # The MemoryWorker is synchronous: exactly one job is running while a handler runs.
        for jid in self.ids:
            job = self.backend.store.find_job(jid)
            if job is not None and job.status.value == "running":
                return job
        raise DemoError("in-memory worker: no running job found for a handler call")

    def enqueue(self, spec: Spec) -> str:
        job = self.build_job(spec)
        if job.execute_at is not None:
            self.backend.queue.schedule_job(job.queue, job, job.execute_at)
        else:
            self.backend.queue.enqueue_job(job.queue, job)
        return str(job.id)

    def start(self) -> None:
        self.started = True
        self.backend.stats.set_active_workers(1)
        self.console.print("[green]✓[/] in-memory worker started (queues "
                           f"{', '.join(QUEUES)}; backoff waits on the real clock)")

    def pump(self) -> None:
        if not self.started:
            return
        for _ in range(50):  # bounded, so the live status keeps refreshing
            if self.worker.run_once() is None:
                break

    def rows(self) -> list[Row]:
        out = []
        for jid in self.ids:
            job = self.backend.store.find_job(jid)
            if job is None:
                raise DemoError(f"job {jid} is not in the in-memory store")
            out.append(row_of(job, self.attempts[jid], job.queue, jid in self.scheduled_ids))
        return out

    def stats(self) -> Any:
        return self.backend.stats.job_stats()

    def dlq(self) -> list[Any]:
        return self.backend.store.failed_jobs(10)
