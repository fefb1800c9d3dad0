"""``python -m benchmarks.soak`` (``make soak``): a reliability soak with the shipped defaults.

What it does (issue 10):

- starts its own ``redis-server`` with AOF (``appendonly yes``, ``appendfsync always``);
- starts 3 real ``celery -A benchmarks.apps.soak_app worker`` processes (prefork, -c 2,
  each in its own process group, ``-l info``, logs kept);
- enqueues ``--jobs`` jobs (default 20,000) with ``jobs.enqueue_many`` whose handler sleeps
  1-20 ms, plus ``--scheduled`` jobs due over the run and ``--flaky`` jobs that fail once
  and are retried by their declared policy; every handler run is noted in a per-process
  file (``benchmarks/apps/soak_app.py``), not in Redis;
- while they drain: SIGKILLs a random worker's process group every 8-15 s and starts a
  replacement, and once, half-way, SIGKILLs Redis and restarts it ~2 s later (same port,
  same AOF);
- waits until every job's record reads ``completed`` (or ``--deadline-s``), then reports
  (rich table, ``benchmarks/results/soak-<UTC time>.json``).

Exit code 0 only when no job was lost (every record completed) and none was completed
twice (the queue's succeeded counter equals the number of jobs). Whatever happens,
including Ctrl-C or SIGTERM, the workers and Redis it started are stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from rich.console import Console
from rich.table import Table

from boundary_celery.redis_server import RedisServer

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
APP = "benchmarks.apps.soak_app"
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")
#: Job statuses read in one pipelined round trip per chunk.
CHUNK = 5000

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def log(msg: str) -> None:
    console.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/dim] {msg}")


# -- arguments ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--jobs", type=int, default=20_000, help="regular jobs; default 20000")
    p.add_argument("--scheduled", type=int, default=500,
                   help="jobs with execute_at spread over the run; default 500")
    p.add_argument("--flaky", type=int, default=20,
                   help="jobs that fail once, then succeed on their retry; default 20")
    p.add_argument("--schedule-window-s", type=float, default=None,
                   help="the scheduled jobs fall due over this many seconds after the "
                        "enqueue; default max(30, jobs / 120)")
    p.add_argument("--workers", type=int, default=3, help="worker processes; default 3")
    p.add_argument("--concurrency", type=int, default=2, help="-c of each worker; default 2")
    p.add_argument("--kill-every", default="8,15",
                   help="seconds between worker kills, MIN,MAX (uniform); default 8,15; "
                        "0 turns the kills off")
    p.add_argument("--redis-down-s", type=float, default=2.0,
                   help="how long Redis stays down after its crash; default 2")
    p.add_argument("--no-redis-restart", action="store_true", help="skip the Redis crash")
    p.add_argument("--deadline-s", type=float, default=900.0,
                   help="give up waiting for completions after this long (from the first "
                        "enqueue); default 900")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    p.add_argument("--loglevel", default="info", help="workers' -l; default info")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report directory; "
                                                             f"default {RESULTS}")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.scheduled < 0 or args.flaky < 0 or args.workers < 1:
        p.error("--jobs >= 1, --scheduled >= 0, --flaky >= 0, --workers >= 1")
    if args.kill_every.strip() in ("0", ""):
        args.kill_range = None
    else:
        lo, _, hi = args.kill_every.partition(",")
        args.kill_range = (float(lo), float(hi or lo))
        if not 0 < args.kill_range[0] <= args.kill_range[1]:
            p.error("--kill-every: MIN,MAX with 0 < MIN <= MAX")
    if args.schedule_window_s is None:
        args.schedule_window_s = max(30.0, args.jobs / 120)
    if args.seed is None:
        args.seed = int(time.time())
    return args


# -- workers ------------------------------------------------------------------------------


def worker_env(redis_url: str, runs_dir: Path) -> dict[str, str]:
    """The environment of a worker: nothing of the caller's boundary/Celery/Redis settings
    (shipped defaults), the private Redis and where to note handler runs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOUNDARY_", "CELERY_", "REDIS_", "SOAK_"))}
    env.update(SOAK_REDIS_URL=redis_url, SOAK_RUNS_DIR=str(runs_dir), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


@dataclass
class Worker:
    """One ``celery worker`` process group, its log kept in ``log_path``."""

    index: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    started_at: float = 0.0
    killed: bool = False  # its group got SIGKILL (by the run, or at the end)

    @property
    def hostname(self) -> str:
        return f"soak-w{self.index}@soak"

    def start(self, env: dict[str, str], concurrency: int, loglevel: str,
              queue: str) -> Worker:
        cmd = [sys.executable, "-m", "celery", "-A", APP, "worker", "-l", loglevel,
               "-P", "prefork", "-c", str(concurrency), "-n", self.hostname, "-Q", queue,
               "--without-mingle", "--without-gossip"]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.started_at = time.time()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_ready(self) -> bool:
        """True once the worker logged that it is ready (read until it has)."""
        if not self.ready and self.alive:
            with self.log_path.open("rb") as f:
                self.ready = b" ready." in f.read(200_000)
        return self.ready

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children), once: the
        group id is never signalled again, so a reused pid cannot be hit."""
        if self.proc is None or self.killed:
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def terminate(self) -> None:
        """Warm shutdown request (SIGTERM to the main process)."""
        if self.alive and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)


def stop_workers(workers: list[Worker], timeout: float = 15.0) -> None:
    """SIGTERM every worker, wait up to ``timeout`` s in all, then SIGKILL every group."""
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + timeout
    for w in workers:
        if w.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(max(0.1, deadline - time.monotonic()))
        w.kill()


# -- the run ------------------------------------------------------------------------------


@dataclass
class Plan:
    """Every job enqueued: ids by kind, and the due time of the scheduled ones."""

    ids: list[str] = field(default_factory=list)
    kind: dict[str, str] = field(default_factory=dict)  # id -> work | scheduled | flaky
    due: dict[str, float] = field(default_factory=dict)  # scheduled id -> epoch seconds


def build_items(args: argparse.Namespace, rng: random.Random, start: datetime
                ) -> list[tuple[str, dict[str, Any]]]:
    """(kind, enqueue_many item) for every job, regular, scheduled and flaky interleaved."""
    from benchmarks.apps.soak_app import FLAKY, QUEUE, WORK

    items: list[tuple[str, dict[str, Any]]] = [
        ("work", {"job_type": WORK, "args": {"ms": rng.randint(1, 20)}, "queue": QUEUE})
        for _ in range(args.jobs)]
    for _ in range(args.scheduled):
        due = start + timedelta(seconds=rng.uniform(1.0, args.schedule_window_s))
        items.insert(rng.randrange(len(items) + 1), (
            "scheduled", {"job_type": WORK, "args": {"ms": rng.randint(1, 20)},
                          "queue": QUEUE, "execute_at": due}))
    for _ in range(args.flaky):
        items.insert(rng.randrange(len(items) + 1), (
            "flaky", {"job_type": FLAKY, "args": {"ms": rng.randint(1, 20)}, "queue": QUEUE}))
    return items


def enqueue(jobs: Jobs, items: list[tuple[str, dict[str, Any]]], batch: int = 1000) -> Plan:
    plan = Plan()
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        ids = jobs.enqueue_many([item for _, item in chunk])
        for jid, (kind, item) in zip(ids, chunk, strict=True):
            plan.ids.append(jid)
            plan.kind[jid] = kind
            if "execute_at" in item:
                plan.due[jid] = item["execute_at"].timestamp()
    return plan


def save_plan(plan: Plan, path: Path) -> None:
    """``<id> <kind> <due epoch or ->`` per job, so an interrupted run can be examined."""
    with path.open("w") as f:
        for jid in plan.ids:
            due = plan.due.get(jid)
            f.write(f"{jid} {plan.kind[jid]} {f'{due:.3f}' if due else '-'}\n")


def where(client: redis.Redis, prefix: str, queue: str, ids: list[str]) -> dict[str, str]:
    """Where each job's message is: a queue list, held under a lease (unacked), the
    scheduled set, or nowhere (for a handful of ids: reads the whole structures)."""
    from boundary_celery.adapters.redis_keys import Keys, list_keys

    keys = Keys(prefix)
    found = dict.fromkeys(ids, "nowhere")
    sources: list[tuple[str, list[str]]] = []
    for key in list_keys(queue):
        sources.append(("queue list", [str(m) for m in client.lrange(key, 0, -1)]))
    sources.append(("unacked (leased)", [str(m) for m in client.hvals(keys.unacked)]))
    sources.append(("scheduled", [str(m) for m in client.hvals(keys.scheduled_messages)]
                    + [str(m) for m in client.zrange(keys.scheduled, 0, -1)]))
    for label, payloads in sources:
        for jid in ids:
            if found[jid] == "nowhere" and any(jid in m for m in payloads):
                found[jid] = label
    return found


def read_statuses(client: redis.Redis, prefix: str, ids: list[str],
                  fields: tuple[str, ...] = ("status",)) -> list[list[Any]]:
    """HMGET ``fields`` of every job record, pipelined per :data:`CHUNK`."""
    out: list[list[Any]] = []
    for start in range(0, len(ids), CHUNK):
        pipe = client.pipeline(transaction=False)
        for jid in ids[start:start + CHUNK]:
            pipe.hmget(f"{prefix}:job:{jid}", list(fields))
        out.extend(pipe.execute())
    return out


@dataclass
class Chaos:
    """What the run did to the system, with wall-clock (epoch) times."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    redis_restarts: list[dict[str, Any]] = field(default_factory=list)
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    poll_errors: int = 0


def drain(args: argparse.Namespace, rng: random.Random, server: RedisServer,
          workers: list[Worker], spawn: Callable[[], Worker], plan: Plan,
          t0: float) -> tuple[set[str], Chaos, float]:
    """Kill workers and crash Redis until every record reads completed or the deadline;
    returns the ids still not completed, what was done, and when the last one completed."""
    from benchmarks.apps.soak_app import KEY_PREFIX, QUEUE

    chaos = Chaos()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=5,
                                  socket_connect_timeout=2)
    pending = set(plan.ids)
    total = len(plan.ids)
    now = time.monotonic()
    next_kill = now + rng.uniform(*args.kill_range) if args.kill_range else float("inf")
    next_poll = now
    next_print = now + 10
    last_done = time.time()
    deadline = t0 + args.deadline_s
    try:
        while pending and time.time() < deadline:
            now = time.monotonic()
            if now >= next_poll:
                # each poll reads every pending record: less often while many are left
                next_poll = now + (3.0 if len(pending) > 1000 else 1.0)
                ids = list(pending)
                try:
                    statuses = read_statuses(client, KEY_PREFIX, ids)
                except (redis.exceptions.RedisError, OSError):
                    chaos.poll_errors += 1
                else:
                    done = {jid for jid, (status,) in zip(ids, statuses, strict=True)
                            if status == "completed"}
                    if done:
                        pending -= done
                        last_done = time.time()
            for w in list(workers):  # a worker that died on its own is reported and replaced
                if w.proc is not None and not w.alive and not w.killed:
                    w.kill()  # whatever is left of its group
                    chaos.unexpected_exits.append({"t": time.time(), "worker": w.hostname,
                                                   "rc": w.proc.returncode})
                    log(f"[red]worker {w.hostname} exited by itself "
                        f"(rc {w.proc.returncode}); starting a replacement[/red]")
                    spawn()
                w.check_ready()
            if now >= next_kill:
                next_kill = now + rng.uniform(*args.kill_range)
                candidates = [w for w in workers if w.alive and w.ready] or \
                    [w for w in workers if w.alive]
                if candidates:
                    victim = rng.choice(candidates)
                    assert victim.proc is not None
                    t_kill = time.time()
                    victim.kill()
                    new = spawn()
                    chaos.kills.append({"t": t_kill, "worker": victim.hostname,
                                        "pid": victim.proc.pid, "replacement": new.hostname,
                                        "done_before": total - len(pending)})
                    log(f"SIGKILL {victim.hostname} (pid group {victim.proc.pid}); "
                        f"replacement {new.hostname}")
            if (not args.no_redis_restart and not chaos.redis_restarts
                    and total - len(pending) >= total / 2):
                t_down = time.time()
                log(f"SIGKILL redis-server; back in {args.redis_down_s:g} s")
                server.restart(down_s=args.redis_down_s, crash=True)
                t_up = time.time()
                chaos.redis_restarts.append({"t_down": t_down, "t_up": t_up,
                                             "done_before": total - len(pending)})
                log(f"redis-server back after {t_up - t_down:.1f} s")
            if now >= next_print:
                next_print = now + 10
                alive = sum(1 for w in workers if w.alive)
                detail = ""
                if 0 < len(pending) <= 20:
                    with contextlib.suppress(redis.exceptions.RedisError, OSError):
                        ids = sorted(pending)
                        statuses = read_statuses(client, KEY_PREFIX, ids)
                        places = where(client, KEY_PREFIX, QUEUE, ids)
                        detail = "; left: " + ", ".join(
                            f"{jid[:8]} {st} ({places[jid]})"
                            for jid, (st,) in zip(ids, statuses, strict=True))
                log(f"completed {total - len(pending):,}/{total:,}; "
                    f"{alive} workers alive; kills {len(chaos.kills)}; "
                    f"elapsed {time.time() - t0:.0f} s{detail}")
            time.sleep(0.25)
    finally:
        client.close()
    return pending, chaos, last_done


# -- analysis -----------------------------------------------------------------------------


@dataclass
class Notes:
    """Handler runs as noted by the workers: per job, (time, kind, worker) sorted by time."""

    by_job: dict[str, list[tuple[float, str, str]]]
    torn_lines: int


def read_notes(runs_dir: Path) -> Notes:
    by_job: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    torn = 0
    for path in sorted(runs_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 4:
                torn += 1
                continue
            jid, kind, host, t = parts
            try:
                by_job[jid].append((float(t), kind, host))
            except ValueError:
                torn += 1
    for events in by_job.values():
        events.sort()
    return Notes(dict(by_job), torn)


def redeliveries(notes: Notes, kills: list[dict[str, Any]]) -> dict[str, Any]:
    """Jobs a kill interrupted (their last note before the kill is on the killed worker
    and says start or ok) and when another worker started them again: delay = that start
    minus the kill. Prefetched jobs that never started are not visible here."""
    delays: list[float] = []
    never_rerun: list[str] = []
    interrupted = 0
    for kill in kills:
        t_kill, host = kill["t"], kill["worker"]
        for jid, events in notes.by_job.items():
            before = [e for e in events if e[0] < t_kill]
            if not before or before[-1][2] != host or before[-1][1] not in ("start", "ok"):
                continue
            after = [e for e in events if e[0] >= t_kill and e[1] == "start"]
            if after:
                interrupted += 1
                delays.append(after[0][0] - t_kill)
            elif before[-1][1] == "start":  # cut mid-handler, never run again
                interrupted += 1
                never_rerun.append(jid)
    delays.sort()
    return {
        "interrupted_measured": interrupted,
        "rerun": len(delays),
        "never_rerun_after_cut": never_rerun,
        "max_s": round(delays[-1], 2) if delays else None,
        "p50_s": round(delays[len(delays) // 2], 2) if delays else None,
        "min_s": round(delays[0], 2) if delays else None,
    }


_COMPLETED_RE = re.compile(rb"Job completed successfully job_id=(\S+)")
_PATTERNS = {
    "lease_lapsed": b"Lease lapsed; delivered again",
    "skipping_delivery": b"Skipping delivery",
    "redis_unavailable_retrying": b"Redis unavailable; retrying",
    "handed_back": b"Message handed back after a connection error",
    "could_not_hand_back": b"Could not hand back deliveries now",
    "delivering_failed": b"Delivering a message failed",
    "job_failed": b"Job failed",
    "tracebacks": b"Traceback (most recent call last)",
    "errors": b"ERROR/",
    "critical": b"CRITICAL/",
}


def scan_logs(log_dir: Path) -> dict[str, Any]:
    """Counts of notable worker log lines, and completions logged per job id."""
    counts: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    skip_reasons: Counter[str] = Counter()
    for path in sorted(log_dir.glob("soak-w*.log")):
        with path.open("rb") as f:
            for line in f:
                m = _COMPLETED_RE.search(line)
                if m:
                    completed[m.group(1).decode()] += 1
                    continue
                for name, needle in _PATTERNS.items():
                    if needle in line:
                        counts[name] += 1
                        if name == "skipping_delivery":
                            r = re.search(rb"reason=(\S+)", line)
                            skip_reasons[r.group(1).decode() if r else "?"] += 1
    return {"counts": dict(counts), "skip_reasons": dict(skip_reasons),
            "completion_logged": completed}


def log_lines_about(log_dir: Path, job_ids: list[str], context: int = 3,
                    limit: int = 200) -> list[str]:
    """Worker log lines naming one of ``job_ids``, each with ``context`` lines around."""
    wanted = [jid.encode() for jid in job_ids]
    out: list[str] = []
    for path in sorted(log_dir.glob("soak-w*.log")):
        lines = path.read_bytes().splitlines()
        for i, line in enumerate(lines):
            if any(w in line for w in wanted):
                lo, hi = max(0, i - context), min(len(lines), i + context + 1)
                out.append(f"--- {path.name}:{i + 1}")
                out.extend(x.decode(errors="replace") for x in lines[lo:hi])
                if len(out) >= limit:
                    return out
    return out


def git_state() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if line[3:].startswith("boundary_celery/")]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_boundary_celery": dirty}


def analyse(server: RedisServer, jobs: Jobs, plan: Plan, chaos: Chaos,
            run_dir: Path) -> dict[str, Any]:
    from benchmarks.apps.soak_app import KEY_PREFIX, QUEUE

    n = len(plan.ids)
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=10)
    try:
        rows = read_statuses(client, KEY_PREFIX, plan.ids, ("status", "attempts"))
        status_of = {jid: row[0] for jid, row in zip(plan.ids, rows, strict=True)}
        lost = [jid for jid in plan.ids if status_of[jid] != "completed"]
        lost_records = {jid: dict(client.hgetall(f"{KEY_PREFIX}:job:{jid}"))
                        for jid in lost[:20]}
        lost_where = where(client, KEY_PREFIX, QUEUE, lost[:50]) if lost else {}
    finally:
        client.close()
    attempts = Counter(int(row[1] or 0) for row in rows)
    stats = jobs.queue_stats(QUEUE)
    notes = read_notes(run_dir / "runs")
    scanned = scan_logs(run_dir / "workers")
    completion_logged: Counter[str] = scanned.pop("completion_logged")

    ok_runs = {jid: sum(1 for e in notes.by_job.get(jid, []) if e[1] == "ok")
               for jid in plan.ids}
    runs_twice = sorted(jid for jid, c in ok_runs.items() if c > 1)
    never_ran = [jid for jid, c in ok_runs.items() if c == 0]
    flaky = [jid for jid in plan.ids if plan.kind[jid] == "flaky"]
    flaky_failed_once = sum(
        1 for jid in flaky
        if sum(1 for e in notes.by_job.get(jid, []) if e[1] == "fail") == 1)
    early = []
    for jid, due in plan.due.items():
        starts = [e[0] for e in notes.by_job.get(jid, []) if e[1] == "start"]
        if starts and starts[0] < due - 0.001:
            early.append(jid)
    unknown_ids = sorted(set(notes.by_job) - set(plan.kind))
    succeeded_minus_n = stats.succeeded_total - n
    completed = sum(1 for st in status_of.values() if st == "completed")
    # Every lost job would make "counter - jobs" negative: duplicates are counter
    # increments beyond the records that read completed (= counter - jobs when none lost).
    succeeded_minus_completed = stats.succeeded_total - completed
    logged_twice = sorted(jid for jid, c in completion_logged.items() if c > 1)
    redeliv = redeliveries(notes, chaos.kills)
    lost_lines = log_lines_about(run_dir / "workers", lost[:10]) if lost else []
    twice_lines = (log_lines_about(run_dir / "workers", runs_twice[:5])
                   if runs_twice else [])
    return {
        "jobs": n,
        "jobs_by_kind": dict(Counter(plan.kind.values())),
        "completed": completed,
        "lost": len(lost),
        "lost_by_status": dict(Counter(str(status_of[j]) for j in lost)),
        "lost_ids": lost[:50],
        "lost_records": lost_records,
        "lost_where": lost_where,
        "lost_never_ran": sum(1 for j in lost if ok_runs[j] == 0),
        "completed_twice": max(0, succeeded_minus_completed),
        "succeeded_total_minus_jobs": succeeded_minus_n,
        "succeeded_total_minus_completed_records": succeeded_minus_completed,
        "succeeded_total": stats.succeeded_total,
        "failed_total": stats.failed_total,
        "retried_total": stats.retried_total,
        "completion_logged_more_than_once": len(logged_twice),
        "completion_logged_more_than_once_ids": logged_twice[:20],
        "handler_runs_gt1": len(runs_twice),
        "handler_runs_gt1_ids": runs_twice[:20],
        "handler_never_finished": len(never_ran),
        "records_by_attempts": {str(k): v for k, v in sorted(attempts.items())},
        "flaky_failed_once": flaky_failed_once,
        "scheduled_started_early": len(early),
        "notes_for_unknown_ids": len(unknown_ids),
        "notes_torn_lines": notes.torn_lines,
        "dlq_size": jobs.dlq_size(),
        "scheduled_left": jobs.scheduled_count(),
        "queue_left": jobs.queue_size(QUEUE),
        "redelivery": redeliv,
        "worker_log": scanned,
        "log_lines_about_lost": lost_lines,
        "log_lines_about_runs_gt1": twice_lines,
    }


def table(result: dict[str, Any]) -> Table:
    f = result["figures"]
    c = result["chaos"]
    t = Table(title=f"soak: {f['jobs']:,} jobs, {result['meta']['workers']} workers x "
                    f"-c {result['meta']['concurrency']}, shipped defaults")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("note")

    def row(name: str, value: Any, note: str = "", bad: bool = False) -> None:
        text = f"{value:,}" if isinstance(value, int) else str(value)
        t.add_row(name, f"[bold red]{text}[/bold red]" if bad else text, note)

    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(f["jobs_by_kind"].items()))
    row("jobs", f["jobs"], kinds)
    row("duration (s)", result["duration_s"], "first enqueue to last completion")
    row("worker kills (SIGKILL of the group)", len(c["kills"]))
    row("worker exits not caused by the run", len(c["unexpected_exits"]),
        bad=bool(c["unexpected_exits"]))
    row("redis restarts (SIGKILL)", len(c["redis_restarts"]),
        f"down {c['redis_restarts'][0]['t_up'] - c['redis_restarts'][0]['t_down']:.1f} s"
        if c["redis_restarts"] else "")
    row("completed", f["completed"])
    places = Counter(f["lost_where"].values())
    row("lost (never completed)", f["lost"],
        "; ".join(filter(None, [
            ", ".join(f"record {k}: {v}" for k, v in f["lost_by_status"].items()),
            ", ".join(f"message {k}: {v}" for k, v in places.items()),
            f"handler never ran: {f['lost_never_ran']}" if f["lost"] else ""])),
        bad=f["lost"] > 0)
    row("completed twice", f["completed_twice"],
        f"succeeded counter {f['succeeded_total']:,} - jobs = "
        f"{f['succeeded_total_minus_jobs']}; - completed records = "
        f"{f['succeeded_total_minus_completed_records']}",
        bad=f["succeeded_total_minus_completed_records"] != 0)
    row("completion logged more than once", f["completion_logged_more_than_once"],
        "second write refused by the record's terminal status")
    row("handler runs > 1", f["handler_runs_gt1"],
        "killed after the handler returned, before the ack")
    row("failed / retried counters", f"{f['failed_total']} / {f['retried_total']}",
        f"flaky jobs that failed once: {f['flaky_failed_once']}")
    row("DLQ size", f["dlq_size"], bad=f["dlq_size"] > 0)
    row("scheduled jobs started early", f["scheduled_started_early"],
        bad=f["scheduled_started_early"] > 0)
    r = f["redelivery"]
    row("max redelivery delay (s)", r["max_s"] if r["max_s"] is not None else "n/a",
        f"kill -> next start, {r['rerun']} jobs cut mid-run (p50 {r['p50_s']} s)")
    row("records by attempts", ", ".join(f"{k}: {v:,}" for k, v in
                                         f["records_by_attempts"].items()))
    logc = f["worker_log"]["counts"]
    row("worker log", ", ".join(f"{k} {v}" for k, v in sorted(logc.items())) or "-")
    return t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / "tmp" / f"soak-{stamp}"
    (run_dir / "runs").mkdir(parents=True, exist_ok=True)
    (run_dir / "workers").mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.soak " + " ".join(argv if argv is not None
                                                            else sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"), "seed": args.seed,
        "workers": args.workers, "concurrency": args.concurrency, "pool": "prefork",
        "kill_every_s": args.kill_range, "redis_down_s": args.redis_down_s,
        "schedule_window_s": args.schedule_window_s, "deadline_s": args.deadline_s,
        "redis_args": list(AOF_ARGS), "cpus": os.cpu_count(), "git": git_state(),
        "run_dir": str(run_dir.relative_to(ROOT)),
    }
    # SIGTERM -> KeyboardInterrupt so the finally blocks stop workers and Redis.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = RedisServer(extra_args=AOF_ARGS, workdir_prefix="boundary-soak-redis-")
    workers: list[Worker] = []
    jobs: Jobs | None = None
    try:
        server.start()
        meta["redis_version"] = server.version()
        os.environ["SOAK_REDIS_URL"] = server.url
        os.environ["SOAK_RUNS_DIR"] = str(run_dir / "runs")
        from benchmarks.apps import soak_app

        jobs = soak_app.jobs
        meta["settings"] = {"lease_s": jobs.settings.workers.lease_s,
                            "heartbeat_interval_s": jobs.settings.workers.heartbeat_interval_s,
                            "scheduler_interval_ms": jobs.settings.scheduler.interval_ms}
        log(f"redis-server {meta['redis_version']} on port {server.port} (AOF, fsync always); "
            f"run dir {meta['run_dir']}; seed {args.seed}")
        env = worker_env(server.url, run_dir / "runs")
        counter = iter(range(1, 1_000_000))

        def spawn() -> Worker:
            """Start one more worker (listed before it starts: always stopped)."""
            i = next(counter)
            w = Worker(i, run_dir / "workers" / f"soak-w{i}.log")
            workers.append(w)
            return w.start(env, args.concurrency, args.loglevel, soak_app.QUEUE)

        for _ in range(args.workers):
            spawn()
        wait_ready(workers, 90.0)
        log(f"{len(workers)} workers ready; enqueueing {args.jobs:,} + {args.scheduled} "
            f"scheduled + {args.flaky} flaky")
        t0 = time.time()
        items = build_items(args, rng, datetime.now(UTC))
        plan = enqueue(jobs, items)
        log(f"enqueued {len(plan.ids):,} jobs in {time.time() - t0:.1f} s")
        save_plan(plan, run_dir / "jobs.tsv")
        pending, chaos, t_end = drain(args, rng, server, workers, spawn, plan, t0)
        log(f"drain over after {time.time() - t0:.1f} s; {len(pending):,} not completed")
        stop_workers(workers)
        figures = analyse(server, jobs, plan, chaos, run_dir)
    except KeyboardInterrupt:
        log("[red]interrupted: stopping workers and redis-server[/red]")
        return 130
    finally:
        stop_workers(workers)
        if jobs is not None:
            jobs.store.close()
        with contextlib.suppress(OSError):
            shutil.copy(server.log_path, run_dir / "redis.log")
        server.stop()
    result = {"meta": meta, "duration_s": round(t_end - t0, 1), "figures": figures,
              "chaos": {"kills": chaos.kills, "redis_restarts": chaos.redis_restarts,
                        "unexpected_exits": chaos.unexpected_exits,
                        "poll_errors": chaos.poll_errors}}
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["git_end"] = git_state()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"soak-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(table(result))
    ok = figures["lost"] == 0 and figures["completed_twice"] == 0
    for line in figures["log_lines_about_lost"][:60]:
        console.print(line, markup=False)
    console.print(f"report: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}; "
                  f"worker logs and handler notes: {meta['run_dir']}")
    console.print("[bold green]PASS[/bold green]: nothing lost, nothing completed twice"
                  if ok else "[bold red]FAIL[/bold red]: lost or completed twice (see above)")
    return 0 if ok else 1


def wait_ready(workers: list[Worker], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(w.check_ready() for w in workers):
        for w in workers:
            if w.proc is not None and not w.alive:
                tail = w.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {w.hostname} exited early:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready after {timeout} s")
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
