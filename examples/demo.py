"""``make demo``: the real job lifecycle, end to end, in well under a minute.

    python -m examples.demo

Where the jobs live:

- ``REDIS_URL`` set: that Redis, under a private key prefix ``demo-<random>`` and private
  queue names; both are deleted afterwards.
- else a throwaway ``redis-server`` (PATH, /usr/sbin, /usr/bin, /usr/local/bin) on a free
  127.0.0.1 port, no persistence, in a temporary directory; stopped afterwards
  (:mod:`boundary_celery.redis_server`).
- else (or with ``BOUNDARY_DEMO_NO_REDIS=1``) the same scenario on the in-memory adapter
  (MemoryBackend + MemoryWorker, real clock), and the demo says so.

With Redis, a real ``celery -A examples.app worker`` subprocess runs the jobs. The jobs are
enqueued while no worker runs, so the start order shows the priorities; a payment that always
fails retries with backoff (200 ms, 400 ms) into the DLQ; a report is scheduled 3 s ahead.
Exit status 0 when every job ended as expected, 1 otherwise (with the reason).

This module is the entry point: it picks the backend, drives the run, prints the live status
and the tables, and cleans up. The jobs and their expected outcomes are in
``examples/demo_scenario.py``; the Redis and in-memory backends in ``examples/demo_backends.py``.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from boundary_celery.redis_server import (
    NO_REDIS_ENV,
    REDIS_SERVER_DIRS,
    RedisServer,
    RedisServerError,
    find_redis_server,
    ping,
)
from examples.demo_backends import (
    MemoryRunner,
    RedisRunner,
    Runner,
    configure_env,
    import_example,
)
from examples.demo_scenario import SCENARIO, TERMINAL, DemoError, Row, finished, problems

JOBS_TIMEOUT_S = 45.0

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
            if finished(rows):
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

    found = problems(rows, dead)
    if found:
        raise DemoError("unexpected outcome: " + "; ".join(found))
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
            redis_runner = RedisRunner(import_example(), console, given, prefix,
                                       private_queues=True, mode=f"Redis at {given}")
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
                server = RedisServer(binary, workdir_prefix="boundary-demo-redis-")
                cleanups.append(("redis-server", server.stop))
                try:
                    server.start()
                except RedisServerError as exc:
                    console.print(f"[yellow]{exc}; falling back to the in-memory adapter[/]")
                    server = None
            if server is not None:
                configure_env(server.url, prefix)
                console.print(f"Redis: started a throwaway redis-server ({binary}) on "
                              f"[bold]{server.url}[/] (no persistence; stopped at the end)")
                runner = RedisRunner(import_example(), console, server.url, prefix,
                                     private_queues=False, mode=f"throwaway Redis {server.url}")
            else:
                runner = MemoryRunner(import_example(), console)
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
