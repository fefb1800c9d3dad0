"""``celery -A app boundary ...``: the operator's command group (a Celery CLI plugin).

Registered through the ``celery.commands`` entry point in pyproject.toml.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from boundary_celery.core.priority import Priority
from boundary_celery.core.status import CancelAction
from boundary_celery.shell.doctor import audit, known_queues
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.scheduler import SchedulerLoop

#: Exit codes (also in the group's help).
EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

LEVELS = [level.value for level in Priority.ordered()]

F = TypeVar("F", bound=Callable[..., Any])


def app_jobs(ctx: click.Context) -> Any:
    """The ``Jobs`` of the app given with ``celery -A``."""
    return jobs_of(ctx.obj.app)


def console() -> Console:
    """stdout console; wide when not a terminal so ids are never cut in pipes and logs."""
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _redis_errors() -> Iterator[None]:
    import redis

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        fail(f"Redis is unavailable: {exc}", EXIT_UNAVAILABLE)


def redis_guard(fn: F) -> F:
    """Exit with code 3 (not a traceback) when Redis cannot be reached."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _redis_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of tables.")


def _ts(value: datetime | int | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value / 1000, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _job_json(job: Any, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = job.model_dump(mode="json")
    if extras:
        data.update(extras)
    return data


@click.group(name="boundary")
@click.pass_context
def boundary(ctx: click.Context) -> None:
    """Boundary jobs: stats, dead letters, retries, cancellation, the scheduler and the
    admin API.

    \b
    Exit codes (for scripts):
      0  success
      1  not found (unknown job id for `job`, `retry`, `cancel`, `purge-dlq ID`) or
         aborted;
         for `doctor`: it found a warning or an error;
         for `health`: a worker's heartbeat is stale or missing, or the scheduler lags
      2  usage error (bad option or argument)
      3  Redis unavailable
    Every reporting command takes --json (one JSON document on stdout).
    """


# -- stats ------------------------------------------------------------------------------


@boundary.command()
@json_option
@click.pass_context
@redis_guard
def stats(ctx: click.Context, as_json: bool) -> None:
    """Totals, workers, DLQ and per-queue counters and sizes (every level)."""
    report = app_jobs(ctx).job_stats()
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    out = console()
    totals = Table(title="Boundary jobs", show_header=True)
    for name in ("processed", "succeeded", "failed", "retried", "workers", "dlq",
                 "scheduled", "scheduler lag ms"):
        totals.add_column(name, justify="right")
    totals.add_row(
        str(report.total_processed), str(report.total_succeeded), str(report.total_failed),
        str(report.total_retried), str(report.active_workers), str(report.dlq_size),
        str(report.scheduled_count), f"{report.scheduler_lag_ms:.0f}",
    )
    out.print(totals)
    queues = Table(title="Queues")
    queues.add_column("queue", no_wrap=True)
    queues.add_column("waiting", justify="right")
    for level in LEVELS:
        queues.add_column(level, justify="right")
    for name in ("processed", "succeeded", "failed", "retried", "avg ms"):
        queues.add_column(name, justify="right")
    for q in report.queues:
        queues.add_row(
            q.queue_name, str(q.size), *(str(q.size_by_priority.get(lv, 0)) for lv in LEVELS),
            str(q.processed_total), str(q.succeeded_total), str(q.failed_total),
            str(q.retried_total), f"{q.avg_duration_ms:.1f}",
        )
    out.print(queues)


# -- the dead letter queue ------------------------------------------------------------------


@boundary.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many dead jobs to show, most recent first.")
@json_option
@click.pass_context
@redis_guard
def failed(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Jobs in the dead letter queue, most recent first."""
    jobs = app_jobs(ctx)
    dead = jobs.failed_jobs(limit)
    if as_json:
        emit_json({"dlq_size": jobs.dlq_size(), "jobs": [_job_json(j) for j in dead]})
        return
    table = Table(title=f"Dead letter queue ({_count(jobs.dlq_size(), 'job')})")
    for name, opts in (("id", {"no_wrap": True}), ("job type", {}), ("queue", {}),
                       ("priority", {}), ("attempts", {"justify": "right"}),
                       ("failed at", {"no_wrap": True}), ("error", {})):
        table.add_column(name, **opts)  # type: ignore[arg-type]
    for job in dead:
        err = job.error
        table.add_row(
            str(job.id), job.job_type, job.queue, job.priority.value, str(job.retry_count),
            _ts(job.completed_at or job.updated_at),
            f"{err.type}: {err.message}" if err else "-",
        )
    console().print(table)


@boundary.command()
@click.argument("job_id")
@json_option
@click.pass_context
@redis_guard
def job(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show one job record (exit code 1 if unknown)."""
    found = app_jobs(ctx).job_detail(job_id)
    if found is None:
        if as_json:
            emit_json({"error": "not found", "job_id": job_id})
        fail(f"job {job_id} not found", EXIT_NOT_FOUND)
    record = found.job
    extras = {"attempts": found.attempts, "worker": found.worker}
    if as_json:
        emit_json(_job_json(record, extras))
        return
    table = Table(title=f"Job {record.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    data = _job_json(record, extras)
    for key, value in data.items():
        if value is None or value == {} or value == []:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        table.add_row(key, text)
    console().print(table)


@boundary.command()
@click.argument("job_id")
@click.option("--reset-retries", is_flag=True,
              help="Start its retry count again at 0 (a full set of attempts).")
@json_option
@click.pass_context
@redis_guard
def retry(ctx: click.Context, job_id: str, reset_retries: bool, as_json: bool) -> None:
    """Queue a dead-lettered job again now (exit code 1 if it is not in the DLQ)."""
    again = app_jobs(ctx).retry_job(job_id, reset_retries=reset_retries)
    if again is None:
        if as_json:
            emit_json({"error": "not found", "job_id": job_id})
        fail(f"job {job_id} is not in the dead letter queue", EXIT_NOT_FOUND)
    if as_json:
        emit_json(_job_json(again))
        return
    click.echo(f"Retrying job {again.id} ({again.job_type}) on queue {again.queue} "
               f"at priority {again.priority.value}, retry count {again.retry_count}")


@boundary.command()
@click.argument("job_id")
@click.option("--terminate", is_flag=True,
              help="Also kill the job's process if it is running (Celery's terminate).")
@json_option
@click.pass_context
@redis_guard
def cancel(ctx: click.Context, job_id: str, terminate: bool, as_json: bool) -> None:
    """Cancel a job (exit code 1 if unknown): a waiting or scheduled job never runs; a
    running one is asked to stop (killed with --terminate); a finished one is unchanged."""
    done = app_jobs(ctx).cancel(job_id, terminate=terminate)
    if done is None:
        if as_json:
            emit_json({"error": "not found", "job_id": job_id})
        fail(f"job {job_id} not found", EXIT_NOT_FOUND)
    action, found = done
    if as_json:
        emit_json(_job_json(found, {"action": action.value}))
        return
    if action is CancelAction.CANCEL:
        outcome = "cancelled"
    elif action is CancelAction.REQUEST:
        outcome = ("running: cancellation requested, its worker kills it" if terminate
                   else "running: cancellation requested (its handler may stop)")
    else:
        outcome = f"already {found.status.value}: unchanged"
    click.echo(f"Job {found.id} ({found.job_type}) on queue {found.queue}: {outcome}")


@boundary.command(name="purge-dlq")
@click.argument("job_id", required=False)
@click.option("--yes", "-y", is_flag=True, help="Purge the whole DLQ without asking.")
@json_option
@click.pass_context
@redis_guard
def purge_dlq(ctx: click.Context, job_id: str | None, yes: bool, as_json: bool) -> None:
    """Delete one dead job (JOB_ID) or the whole dead letter queue (asks unless --yes)."""
    jobs = app_jobs(ctx)
    if job_id is None and not yes:
        size = jobs.dlq_size()
        if not click.confirm(f"Delete all {size} dead jobs?", default=False, err=True):
            fail("aborted", EXIT_NOT_FOUND)
    purged = jobs.purge_dlq(job_id)
    if as_json:
        emit_json({"purged": purged, "job_id": job_id})
    else:
        click.echo(f"Purged {purged} job{'s' if purged != 1 else ''} from the dead letter queue")
    if job_id is not None and purged == 0:
        if not as_json:
            click.echo(f"Error: job {job_id} is not in the dead letter queue", err=True)
        sys.exit(EXIT_NOT_FOUND)


# -- scheduled jobs ---------------------------------------------------------------------------


@boundary.command()
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many scheduled jobs to show, soonest first.")
@json_option
@click.pass_context
@redis_guard
def scheduled(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Delayed jobs and retries waiting for their time, soonest first."""
    jobs = app_jobs(ctx)
    total = jobs.scheduled_count()
    rows = []
    now_ms = datetime.now(UTC).timestamp() * 1000
    for entry in jobs.scheduled_jobs(limit):
        jid, due_ms, record = entry.id, entry.due_at_ms, entry.job
        rows.append({
            "id": jid,
            "due_at": _ts(due_ms),
            "due_in_ms": max(0, int(due_ms - now_ms)),
            "job_type": record.job_type if record else None,
            "queue": record.queue if record else None,
            "priority": record.priority.value if record else None,
            "status": record.status.value if record else "unreadable",
            "retry_count": record.retry_count if record else None,
        })
    if as_json:
        emit_json({"scheduled_count": total, "jobs": rows})
        return
    table = Table(title=f"Scheduled ({_count(total, 'job')})")
    for name in ("id", "due at", "due in", "job type", "queue", "priority", "status",
                 "retries"):
        table.add_column(name, no_wrap=name in ("id", "due at"))
    for r in rows:
        table.add_row(r["id"], r["due_at"], f"{r['due_in_ms'] / 1000:.1f}s",
                      *(str(r[k]) if r[k] is not None else "-"
                        for k in ("job_type", "queue", "priority", "status", "retry_count")))
    console().print(table)


@boundary.command()
@click.option("--interval-ms", type=click.IntRange(min=10), default=None,
              help="Pass interval (default: scheduler.interval_ms from settings).")
@click.option("--max-passes", type=click.IntRange(min=1), default=None,
              help="Stop after this many passes (default: run until SIGTERM/SIGINT).")
@click.pass_context
def scheduler(ctx: click.Context, interval_ms: int | None, max_passes: int | None) -> None:
    """Run a standalone scheduler (any number may run beside the embedded ones)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    loop = SchedulerLoop(app_jobs(ctx), interval_ms=interval_ms)

    def stop(signum: int, _frame: Any) -> None:
        loop.stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"boundary scheduler started (interval {loop.interval_s * 1000:.0f} ms)", err=True)
    loop.run(max_passes=max_passes)
    click.echo(f"boundary scheduler stopped: {loop.moved_total} jobs published", err=True)


# -- the admin API ------------------------------------------------------------------------------


@boundary.command()
@click.option("--host", default=None, help="Bind address (default: admin.host from settings).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default: admin.port from settings).")
@click.option("--insecure", is_flag=True, default=None,
              help="Serve a non-loopback address without a token (admin.insecure).")
@click.pass_context
def admin(ctx: click.Context, host: str | None, port: int | None,
          insecure: bool | None) -> None:
    """Serve the admin HTTP API, /metrics and the dashboard (blocks).

    Without admin.token it binds a loopback address only (127.0.0.0/8, ::1, localhost)
    unless --insecure: exit code 2 otherwise."""
    # Imported here: celery loads this command group in every `celery` process, workers
    # included, and they need not load Starlette.
    from boundary_celery.admin.app import InsecureBindError, serve_admin

    jobs = app_jobs(ctx)
    cfg = jobs.settings.admin
    if insecure:
        cfg = cfg.model_copy(update={"insecure": True})
    bind = host or cfg.host
    if cfg.insecure and not cfg.token:
        click.echo(f"Warning: serving the admin API on {bind} without authentication "
                   "(insecure)", err=True)
    try:
        serve_admin(jobs, host=bind, port=port if port is not None else cfg.port,
                    settings=cfg)
    except InsecureBindError as exc:
        fail(str(exc), EXIT_USAGE)


# -- probes ----------------------------------------------------------------------------------


@boundary.command()
@click.option("--worker", "workers", multiple=True, metavar="NAME",
              help="A worker whose heartbeat must be fresh (repeatable); %h, %n and %d "
                   "expand as in `celery worker -n`, e.g. worker@%h.")
@click.option("--max-age-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Oldest fresh heartbeat (default: 3 x workers.heartbeat_interval_s).")
@click.option("--max-scheduler-lag-s", type=click.FloatRange(min=0), default=None,
              help="Also fail when the oldest due scheduled job is overdue by more.")
@json_option
@click.pass_context
@redis_guard
def health(ctx: click.Context, workers: tuple[str, ...], max_age_s: float | None,
           max_scheduler_lag_s: float | None, as_json: bool) -> None:
    """Probe for containers: exit 0 when Redis answers, every --worker beat within
    --max-age-s and the scheduler lags no more than --max-scheduler-lag-s; 1 when a
    worker's heartbeat is stale or missing or the scheduler lags; 3 when Redis is
    unavailable."""
    from celery.utils.nodenames import host_format

    jobs = app_jobs(ctx)
    store = jobs.store
    limit_s = max_age_s if max_age_s is not None else (
        3.0 * jobs.settings.workers.heartbeat_interval_s)
    store.ping()
    now = datetime.now(UTC)
    now_ms = now.timestamp() * 1000
    report: dict[str, Any] = {"redis": "ok", "max_age_s": limit_s, "workers": {}}
    problems: list[str] = []
    for pattern in workers:
        name = host_format(pattern)
        beat_ms = store.last_heartbeat_ms(name)
        age_s = None if beat_ms is None else max(0.0, (now_ms - beat_ms) / 1000)
        fresh = age_s is not None and age_s <= limit_s
        report["workers"][name] = {"age_s": age_s, "ok": fresh}
        if age_s is None:
            problems.append(f"worker {name}: no heartbeat in the store")
        elif not fresh:
            problems.append(f"worker {name}: last heartbeat {age_s:.1f} s ago "
                            f"(> {limit_s:g} s)")
    if max_scheduler_lag_s is not None:
        lag_s = store.scheduler_lag_ms(now) / 1000
        report["scheduler_lag_s"] = lag_s
        if lag_s > max_scheduler_lag_s:
            problems.append(f"scheduler lag {lag_s:.1f} s (> {max_scheduler_lag_s:g} s)")
    report["ok"] = not problems
    report["problems"] = problems
    if as_json:
        emit_json(report)
    else:
        for name, row in report["workers"].items():
            if row["ok"]:
                click.echo(f"worker {name}: heartbeat {row['age_s']:.1f} s ago")
        for problem in problems:
            click.echo(f"unhealthy: {problem}", err=True)
        if not problems:
            click.echo("healthy")
    if problems:
        sys.exit(EXIT_NOT_FOUND)


# -- migrating an existing Celery project ------------------------------------------------------

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


@boundary.command()
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the app: install(), Celery settings, tasks, canvas, Redis lists, workers
    (exit code 1 when it finds a warning or an error)."""
    findings = audit(ctx.obj.app)
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    if as_json:
        emit_json({"findings": [f.to_dict() for f in findings], "errors": errors,
                   "warnings": warnings})
    else:
        table = Table(title=f"boundary doctor: {_count(errors, 'error')}, "
                            f"{_count(warnings, 'warning')}")
        for name in ("severity", "check", "subject", "finding"):
            table.add_column(name, no_wrap=name != "finding")
        for f in findings:
            table.add_row(Text(f.severity, style=SEVERITY_STYLES.get(f.severity, "")),
                          Text(f.check), Text(f.subject), Text(f.detail))
        console().print(table)
    if errors or warnings:
        sys.exit(EXIT_NOT_FOUND)


@boundary.command(name="migrate-lists")
@json_option
@click.pass_context
@redis_guard
def migrate_lists(ctx: click.Context, as_json: bool) -> None:
    """Move messages that producers without boundary-celery left in kombu's default
    priority lists to the list of their level, for every known queue."""
    store = app_jobs(ctx).store
    moved = {queue: store.move_legacy(queue) for queue in known_queues(ctx.obj.app)}
    total = sum(moved.values())
    if as_json:
        emit_json({"queues": moved, "moved": total})
        return
    table = Table(title=f"Moved {_count(total, 'message')} out of kombu's default lists")
    table.add_column("queue", no_wrap=True)
    table.add_column("moved", justify="right")
    for queue, n in moved.items():
        table.add_row(Text(queue), str(n))
    console().print(table)
