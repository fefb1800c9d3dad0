"""``make demo``: the real job lifecycle, end to end, in well under a minute.

    python -m examples.demo

Where the jobs live:

- ``REDIS_URL`` set: that Redis, under a private key prefix ``demo-<random>`` and private
  queue names; both are deleted afterwards.
- else a throwaway ``redis-server`` (PATH, /usr/sbin, /usr/bin, /usr/local/bin) on a free
  127.0.0.1 port, no persistence, in a temporary directory; stopped afterwards.
- else (or with ``BOUNDARY_DEMO_NO_REDIS=1``) the same scenario on the in-memory adapter
  (MemoryBackend + MemoryWorker, real clock), and the demo says so.

With Redis, a real ``celery -A examples.app worker`` subprocess runs the jobs. The jobs are
enqueued while no worker runs, so the start order shows the priorities; a payment that always
fails retries with backoff (200 ms, 400 ms) into the DLQ; a report is scheduled 3 s ahead.
Exit status 0 when every job ended as expected, 1 otherwise (with the reason).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
#: The queues of examples/app.py (their logical names).
QUEUES = ["default", "emails", "media", "reports", "bulk-operations"]
REDIS_SERVER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")
NO_REDIS_ENV = "BOUNDARY_DEMO_NO_REDIS"
JOBS_TIMEOUT_S = 45.0
WORKER_READY_TIMEOUT_S = 30.0
SCHEDULE_AHEAD_S = 3.0
TERMINAL = ("completed", "failed", "cancelled")
PAYMENT_ERROR = "Payment gateway unavailable"

STATUS_STYLE = {
    "pending": "yellow",
    "scheduled": "cyan",
    "running": "blue",
    "retrying": "magenta",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
}


def make_console() -> Console:
    # Piped output (CI, tests, `make demo | tee`): a fixed width so the tables do not wrap.
    return Console() if sys.stdout.isatty() else Console(width=130)


console = make_console()


class DemoError(Exception):
    """The demo cannot go on or did not end as expected; the message says why."""


# --- the scenario -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One job of the scenario."""

    job_type: str
    args: dict[str, Any]
    priority: str | None = None  # None: the handler's default
    scheduled: bool = False
    expect: str = "completed"


#: Enqueued in this order, least urgent first, so that the start order shows the priorities.
SCENARIO = [
    Spec("export_data", {"user_id": "u-42", "format": "csv"}),                    # bulk
    Spec("generate_report", {"report_type": "weekly", "user_id": "u-42"}),        # low
    Spec("process_image", {"upload_id": "up-7", "sizes": ["64", "256"]}),         # normal
    Spec("process_payment", {"order_id": "ord-1001"}, expect="failed"),           # normal
    Spec("cleanup", {}, priority="low"),
    Spec("send_email", {"to": "ada@example.com", "subject": "Welcome"}),          # high
    Spec("process_image", {"upload_id": "up-8", "sizes": ["64"]}, priority="high"),
    Spec("send_email", {"to": "ops@example.com", "subject": "Password reset"},
         priority="critical"),
    Spec("generate_report", {"report_type": "daily", "user_id": "u-42"}, scheduled=True),
]


@dataclass
class Row:
    """What the tables show about one job."""

    job_id: str
    job_type: str
    queue: str
    priority: str
    status: str
    attempts: int = 0
    retry_count: int = 0
    max_retries: int = 0
    duration_ms: float | None = None
    started_at: datetime | None = None
    scheduled: bool = False
    error: str | None = None


def row_of(job: Any, attempts: int, queue: str, scheduled: bool) -> Row:
    error = f"{job.error.type}: {job.error.message}" if job.error is not None else None
    return Row(
        job_id=str(job.id), job_type=job.job_type, queue=queue, priority=job.priority.value,
        status=job.status.value, attempts=attempts, retry_count=job.retry_count,
        max_retries=job.max_retries, duration_ms=job.duration_ms, started_at=job.started_at,
        scheduled=scheduled, error=error,
    )


# --- where the jobs run -----------------------------------------------------------------------


class Runner:
    """The operations the demo needs from a backend (Redis + Celery worker, or in-memory)."""

    mode: str = ""

    def __init__(self, example: ModuleType) -> None:
        self.example = example
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
            "queue": self.queue_name(getattr(task, "boundary_queue", "default")),
        }
        if spec.priority is not None:
            options["priority"] = spec.priority
        if spec.scheduled:
            options["execute_at"] = datetime.now(UTC) + timedelta(seconds=SCHEDULE_AHEAD_S)
        return self.jobs.build_job(spec.job_type, spec.args, **options)


class RedisRunner(Runner):
    """Jobs published through Celery to Redis; a real worker subprocess runs them."""

    def __init__(self, example: ModuleType, url: str, prefix: str, private_queues: bool,
                 mode: str) -> None:
        super().__init__(example)
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
        console.print(f"[green]✓[/] worker [bold]{self.worker.hostname}[/] ready "
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
            found = self.jobs.store.find_job_with_extras(jid)
            if found is None:
                raise DemoError(f"job {jid} has no record in Redis")
            job, extras = found
            out.append(row_of(job, int(extras["attempts"]),
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
        import redis

        from boundary_celery.adapters.redis_keys import list_keys

        client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)
        try:
            doomed = list(client.scan_iter(f"{self.prefix}:*", count=1000))
            if self.private_queues:
                for q in QUEUES:
                    actual = self.queue_name(q)
                    doomed.extend(list_keys(actual))
                    # kombu's binding tables (exchange = queue name for Celery's queues)
                    doomed.append(f"_kombu.binding.{actual}")
                    doomed.append(f"_kombu.binding_permanent.{actual}")
            deleted = 0
            for start in range(0, len(doomed), 500):
                deleted += int(client.delete(*doomed[start:start + 500]))
            return deleted
        finally:
            client.close()


class MemoryRunner(Runner):
    """The same scenario on MemoryBackend + MemoryWorker (no Redis, no Celery worker)."""

    mode = "in-memory adapter (MemoryBackend + MemoryWorker)"

    def __init__(self, example: ModuleType) -> None:
        from boundary_celery.adapters.memory import MemoryBackend, MemoryWorker

        super().__init__(example)
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
        console.print("[green]✓[/] in-memory worker started (queues "
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


# --- Redis: a given URL or a throwaway server -------------------------------------------------


def find_redis_server() -> str | None:
    if os.environ.get(NO_REDIS_ENV, "").strip().lower() in ("1", "true", "yes"):
        return None
    found = shutil.which("redis-server")
    if found:
        return found
    for directory in REDIS_SERVER_DIRS:
        candidate = Path(directory) / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(url: str, timeout: float = 2.0) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    """A throwaway redis-server subprocess: no persistence, state in a temporary directory."""

    binary: str
    workdir: Path = field(default_factory=lambda: Path(
        tempfile.mkdtemp(prefix="boundary-demo-redis-")))
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            log = (self.workdir / "redis.log").open("ab")
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                 "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if ping(self.url, 0.5):
                    return self
                time.sleep(0.05)
            self.stop_process()
        tail = (self.workdir / "redis.log").read_text(errors="replace").splitlines()[-5:]
        raise DemoError("redis-server did not start: " + " | ".join(tail))

    def stop_process(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        try:
            self.stop_process()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


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
    import examples.app

    return examples.app


# --- output -----------------------------------------------------------------------------------


def styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def live_view(rows: list[Row], elapsed: float, worker_up: bool) -> Table:
    counts = Counter(r.status for r in rows)
    done = sum(counts[s] for s in TERMINAL)
    line = Text(f"{'jobs' if worker_up else 'enqueued'} {done}/{len(rows)} finished  ")
    for status in STATUS_STYLE:
        if counts[status]:
            line.append(f"{status} {counts[status]}  ", style=STATUS_STYLE[status])
    line.append(f"{elapsed:4.1f} s", style="dim")
    grid = Table.grid(padding=(0, 2))
    grid.add_row(ProgressBar(total=len(rows), completed=done, width=40), line)
    return grid


def jobs_table(rows: list[Row]) -> Table:
    starts = sorted((r.started_at, r.job_id) for r in rows if r.started_at is not None)
    order = {jid: n for n, (_, jid) in enumerate(starts, 1)}
    table = Table(title="Jobs (enqueued top to bottom, before the worker started)",
                  title_justify="left",
                  caption="attempts: made of 1 + max_retries · * scheduled 3 s ahead · "
                          "started: start order (of the last attempt)", caption_justify="left")
    table.add_column("job", style="bold")
    table.add_column("job type", no_wrap=True)
    table.add_column("queue", no_wrap=True)
    table.add_column("priority")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("retry_count", justify="right")
    table.add_column("duration ms", justify="right")
    table.add_column("started", justify="right")
    for r in rows:
        job_type = r.job_type + (" *" if r.scheduled else "")
        table.add_row(
            r.job_id[:8], job_type, r.queue, r.priority, styled(r.status),
            f"{r.attempts} of {r.max_retries + 1}", str(r.retry_count),
            f"{r.duration_ms:.1f}" if r.duration_ms is not None else "-",
            f"#{order[r.job_id]}" if r.job_id in order else "-",
        )
    return table


def stats_table(report: Any, display_queue: Callable[[str], str]) -> Table:
    table = Table(title="Stats (job_stats())", title_justify="left")
    table.add_column("queue", style="bold")
    for name in ("processed", "succeeded", "failed", "retried", "avg ms", "waiting"):
        table.add_column(name, justify="right")
    for q in report.queues:
        table.add_row(display_queue(q.queue_name), str(q.processed_total),
                      str(q.succeeded_total), str(q.failed_total), str(q.retried_total),
                      f"{q.avg_duration_ms:.1f}", str(q.size))
    table.add_section()
    table.add_row("total", str(report.total_processed), str(report.total_succeeded),
                  str(report.total_failed), str(report.total_retried), "", "", style="bold")
    table.caption = (f"active workers {report.active_workers} · DLQ {report.dlq_size} · "
                     f"scheduled {report.scheduled_count} · "
                     f"scheduler lag {report.scheduler_lag_ms:.0f} ms")
    return table


def dlq_panel(dead: list[Any], default_policy: Any) -> Panel:
    from boundary_celery.core.retry import calculate_retry_delay

    if not dead:
        return Panel("(empty)", title="Dead-letter queue", title_align="left")
    lines = Text()
    for job in dead:
        policy = job.retry_policy or default_policy
        delays = [calculate_retry_delay(n, policy) for n in range(job.max_retries)]
        lines.append(f"{str(job.id)[:8]}  {job.job_type}  args={job.args}\n", style="bold")
        if job.error is not None:
            lines.append(f"  error: {job.error.type}: {job.error.message}\n", style="red")
        lines.append(f"  first attempt + {job.max_retries} retries (backoff "
                     f"{', '.join(f'{d} ms' for d in delays)}), then the DLQ; "
                     f"retry_count {job.retry_count}\n")
        if job.completed_at is not None:
            lines.append(f"  failed at {job.completed_at.isoformat(timespec='milliseconds')}")
    return Panel(lines, title=f"Dead-letter queue ({len(dead)})", title_align="left")


# --- the run ----------------------------------------------------------------------------------


def run_scenario(runner: Runner) -> None:
    console.print(f"[bold]Enqueueing {len(SCENARIO)} jobs[/] while no worker runs "
                  "(least urgent first)…")
    runner.enqueue_all()
    runner.start()
    started = time.monotonic()
    deadline = started + JOBS_TIMEOUT_S
    rows = runner.rows()
    with Live(live_view(rows, 0.0, True), console=console, refresh_per_second=10) as live:
        while True:
            runner.pump()
            rows = runner.rows()
            live.update(live_view(rows, time.monotonic() - started, True))
            if all(r.status in TERMINAL for r in rows):
                break
            if time.monotonic() > deadline:
                live.stop()
                console.print(jobs_table(rows))
                stuck = ", ".join(f"{r.job_id[:8]} {r.job_type} ({r.status})"
                                  for r in rows if r.status not in TERMINAL)
                raise DemoError(f"jobs did not finish within {JOBS_TIMEOUT_S:.0f} s: {stuck}")
            time.sleep(0.1)
    elapsed = time.monotonic() - started

    console.print()
    console.print(jobs_table(rows))
    console.print(stats_table(runner.stats(), runner.display_queue))
    dead = runner.dlq()
    console.print(dlq_panel(dead, runner.jobs.default_policy))

    problems = [f"{r.job_id[:8]} {r.job_type}: expected {spec.expect}, got {r.status}"
                for spec, r in zip(SCENARIO, rows, strict=True) if r.status != spec.expect]
    payment = next(r for spec, r in zip(SCENARIO, rows, strict=True)
                   if spec.job_type == "process_payment")
    if payment.job_id not in {str(j.id) for j in dead}:
        problems.append("the failed payment is not in the DLQ")
    if not payment.error or PAYMENT_ERROR not in payment.error:
        problems.append(f"the payment's error is {payment.error!r}")
    if problems:
        raise DemoError("unexpected outcome: " + "; ".join(problems))
    console.print(f"[bold green]All {len(rows)} jobs finished as expected[/] in {elapsed:.1f} s "
                  f"on the {runner.mode}.")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks (cleanup)


def main() -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    t0 = time.monotonic()
    console.rule("[bold]boundary-celery demo")
    cleanups: list[tuple[str, Callable[[], Any]]] = []
    prefix = f"demo-{secrets.token_hex(4)}"
    runner: Runner
    try:
        given = os.environ.get("REDIS_URL", "").strip()
        if given:
            if not ping(given, 3.0):
                raise DemoError(f"REDIS_URL={given} does not answer PING; start that Redis "
                                "or unset REDIS_URL to let the demo start its own")
            configure_env(given, prefix)
            console.print(f"Redis: [bold]REDIS_URL[/] {given} (key prefix [bold]{prefix}[/], "
                          "private queue names; both deleted at the end)")
            redis_runner = RedisRunner(import_example(), given, prefix, private_queues=True,
                                       mode=f"Redis at {given}")
            cleanups.append(("demo keys", lambda: console.print(
                f"  deleted {redis_runner.delete_keys()} demo keys")))
            runner = redis_runner
        else:
            binary = find_redis_server()
            server: RedisServer | None = None
            if binary is None:
                why = (f"{NO_REDIS_ENV}=1" if os.environ.get(NO_REDIS_ENV)
                       else "no redis-server on PATH or in " + ", ".join(REDIS_SERVER_DIRS))
                console.print(Panel(
                    f"REDIS_URL is not set and {why}.\n"
                    "Falling back to the [bold]in-memory adapter[/] (MemoryBackend + "
                    "MemoryWorker): same scenario, same core rules, but no Redis and no "
                    "Celery worker process.\nInstall redis-server or set REDIS_URL to see "
                    "the real lifecycle.", title="in-memory mode", border_style="yellow"))
            else:
                server = RedisServer(binary)
                cleanups.append(("redis-server", server.stop))
                try:
                    server.start()
                except DemoError as exc:
                    console.print(f"[yellow]{exc}; falling back to the in-memory adapter[/]")
                    server = None
            if server is not None:
                configure_env(server.url, prefix)
                console.print(f"Redis: started a throwaway redis-server ({binary}) on "
                              f"[bold]{server.url}[/] (no persistence; stopped at the end)")
                runner = RedisRunner(import_example(), server.url, prefix,
                                     private_queues=False, mode=f"throwaway Redis {server.url}")
            else:
                runner = MemoryRunner(import_example())
        if isinstance(runner, RedisRunner):
            cleanups.append(("worker", runner.stop))
        run_scenario(runner)
        return 0
    except DemoError as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/]")
        return 130
    except SystemExit as exc:  # SIGTERM (_on_sigterm)
        console.print("\n[yellow]terminated[/]")
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        if cleanups:
            console.print("[dim]Cleaning up…[/]")
        for name, action in reversed(cleanups):
            try:
                action()
            except Exception as exc:  # report, then go on with the other cleanups
                console.print(f"[red]cleanup of {name} failed: {exc}[/]")
        console.print(f"[dim]done in {time.monotonic() - t0:.1f} s[/]")


if __name__ == "__main__":
    sys.exit(main())
