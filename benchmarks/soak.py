"""``python -m benchmarks.soak`` (``make soak``): a reliability soak with faults, shipped
defaults.

It checks the invariant of issue 18 from outside the system: once a publish returns, the
job ends completed, failed (in the DLQ, with its reason) or cancelled, and two copies of
one job never run at the same time.

What it does:

- starts its own ``redis-server`` with AOF (``appendonly yes``, ``appendfsync always``)
  and 3 real ``celery -A benchmarks.apps.soak_app worker`` processes (prefork, -c 2, each
  in its own process group, ``-l info``, logs kept);
- enqueues ``--jobs`` jobs (default 20,000) with ``jobs.enqueue_many`` (handler: sleep
  1-20 ms), ``--scheduled`` jobs due over the run and ``--flaky`` jobs that fail once and
  are retried by their declared policy;
- for a fault window (``--window-s``) two producers keep publishing, ``--rate`` calls/s
  each: the *boundary* producer (the installed app: ``jobs.enqueue`` and the task's
  ``apply_async``, which is ``delay`` with the id chosen up front) and the *plain*
  producer (a Celery app without ``install()``, broker = the same Redis: ``send_task``
  of the same task names to the same queue). A call that returned is acknowledged; one
  that raised is counted as raised, its job id kept (it may or may not have been stored);
- during that window: Redis paused with SIGSTOP for each of ``--pauses`` seconds
  (default 1.5, 2.5, 4 and 10, then SIGCONT), one Redis SIGKILL + restart on the same AOF,
  each at a random moment, and a random worker's process group SIGKILLed every 8-15 s
  (a replacement starts at once);
- waits until every acknowledged job's record is terminal and no record is left
  non-terminal (or ``--deadline-s``), then analyses (rich tables,
  ``benchmarks/results/soak-<UTC time>.json``).

Counted outside the system: every handler run is noted (job id, pid, start, end) in a
per-process file (``benchmarks/apps/soak_app.py``), not in Redis. The report gives:
acknowledged jobs lost (no terminal record; completed but never ran; failed but not in
the DLQ or without a reason), records left non-terminal (any record, raised publishes
included), jobs whose runs overlapped in time (concurrent runs), and every repeated run
with its explanation: a failed attempt retried by its policy, or the worker that ran it
first SIGKILLed after it started and before its ack (its pid and the kill time); anything
else is listed as unexplained.

Exit code 0 only when nothing acknowledged was lost, no record is non-terminal, no job
ran twice at once and none completed twice (the queue's succeeded counter equals the
completed records). Whatever happens, including Ctrl-C or SIGTERM, Redis is resumed
(SIGCONT) and the workers and Redis it started are stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from rich.console import Console
from rich.table import Table

from boundary_celery.redis_server import RedisServer

if TYPE_CHECKING:
    from celery import Celery

    from boundary_celery.shell.jobs import Jobs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
APP = "benchmarks.apps.soak_app"
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")
TERMINAL = ("completed", "failed", "cancelled")
#: Job statuses read in one pipelined round trip per chunk.
CHUNK = 5000
#: Seconds before the first fault of the window, and at least between two faults.
LEAD_S = 3.0
GAP_S = 2.0
#: Share of the producers' jobs that are flaky (fail once, then retried).
FLAKY_SHARE = 0.03
#: Ids whose records and worker log lines the report quotes, per finding.
EVIDENCE = 10

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def log(msg: str) -> None:
    console.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/dim] {msg}")


# -- arguments ----------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.replace(" ", "").split(",") if x and float(x) > 0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--jobs", type=int, default=20_000,
                   help="jobs enqueued up front with enqueue_many; default 20000")
    p.add_argument("--scheduled", type=int, default=500,
                   help="jobs with execute_at spread over the run; default 500")
    p.add_argument("--flaky", type=int, default=20,
                   help="jobs that fail once, then succeed on their retry; default 20")
    p.add_argument("--schedule-window-s", type=float, default=None,
                   help="the scheduled jobs fall due over this many seconds after the "
                        "enqueue; default max(30, jobs / 120)")
    p.add_argument("--window-s", type=float, default=None,
                   help="the fault window: producers publish and faults happen during it "
                        "(from the end of the up-front enqueue); default max(60, jobs / 150)")
    p.add_argument("--rate", type=float, default=20.0,
                   help="publish calls per second of each producer (boundary, plain) "
                        "during the window; default 20, 0: no producers")
    p.add_argument("--pauses", default="1.5,2.5,4,10",
                   help="Redis SIGSTOP pauses, seconds each, at random moments of the "
                        "window; default 1.5,2.5,4,10; 0: none")
    p.add_argument("--redis-down-s", type=float, default=2.0,
                   help="how long Redis stays down after its SIGKILL; default 2")
    p.add_argument("--no-redis-restart", action="store_true", help="skip the Redis crash")
    p.add_argument("--workers", type=int, default=3, help="worker processes; default 3")
    p.add_argument("--concurrency", type=int, default=2, help="-c of each worker; default 2")
    p.add_argument("--kill-every", default="8,15",
                   help="seconds between worker kills during the window, MIN,MAX "
                        "(uniform); default 8,15; 0 turns the kills off")
    p.add_argument("--max-kills", type=int, default=None,
                   help="at most this many worker kills; default: no limit")
    p.add_argument("--deadline-s", type=float, default=900.0,
                   help="give up waiting for terminal records after this long (from the "
                        "first enqueue); default 900")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    p.add_argument("--loglevel", default="info", help="workers' -l; default info")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help=f"JSON report directory (worker logs and handler notes under its "
                        f"tmp/); default {RESULTS}")
    args = p.parse_args(argv)
    if (args.jobs < 0 or args.scheduled < 0 or args.flaky < 0 or args.workers < 1
            or args.rate < 0):
        p.error("--jobs, --scheduled, --flaky, --rate >= 0; --workers >= 1")
    if args.kill_every.strip() in ("0", ""):
        args.kill_range = None
    else:
        lo, _, hi = args.kill_every.partition(",")
        args.kill_range = (float(lo), float(hi or lo))
        if not 0 < args.kill_range[0] <= args.kill_range[1]:
            p.error("--kill-every: MIN,MAX with 0 < MIN <= MAX")
    args.pause_list = _floats(args.pauses)
    if args.schedule_window_s is None:
        args.schedule_window_s = max(30.0, args.jobs / 120)
    if args.window_s is None:
        args.window_s = max(60.0, args.jobs / 150)
    needed = fault_span(args.pause_list, args.redis_down_s, not args.no_redis_restart)
    if args.window_s < needed:
        p.error(f"--window-s {args.window_s:g} is shorter than the faults need "
                f"({needed:g} s: {LEAD_S:g} s lead, each fault and {GAP_S:g} s after it)")
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


# -- what was published -------------------------------------------------------------------


@dataclass
class Published:
    """One publish call: who made it, how, when, and (raised) what it raised."""

    source: str  # bulk (enqueue_many) | boundary (installed app) | plain (no install())
    via: str  # enqueue_many | jobs.enqueue | task.apply_async | send_task
    kind: str  # work | scheduled | flaky
    t_call: float
    t_return: float
    due: float | None = None  # scheduled jobs: epoch seconds
    error: str = ""


class Ledger:
    """Every job id published, acknowledged (the call returned) or raised; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[str, Published] = {}
        self.raised: dict[str, Published] = {}
        self._acked_order: list[str] = []

    def add(self, jid: str, pub: Published) -> None:
        with self._lock:
            if pub.error:
                self.raised[jid] = pub
            else:
                self.acked[jid] = pub
                self._acked_order.append(jid)

    def acked_since(self, index: int) -> list[str]:
        """Acknowledged ids from position ``index`` on (in the order they returned)."""
        with self._lock:
            return self._acked_order[index:]

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out: dict[str, dict[str, int]] = defaultdict(lambda: {"acked": 0, "raised": 0})
            for pub in self.acked.values():
                out[pub.source]["acked"] += 1
            for pub in self.raised.values():
                out[pub.source]["raised"] += 1
            return {k: dict(v) for k, v in sorted(out.items())}

    def save(self, path: Path) -> None:
        """``<id> <acked|raised> <source> <via> <kind> <t_call> <t_return> <due or ->``
        per job, so an interrupted run can be examined."""
        with self._lock, path.open("w") as f:
            for state, table in (("acked", self.acked), ("raised", self.raised)):
                for jid, p in table.items():
                    due = f"{p.due:.3f}" if p.due else "-"
                    f.write(f"{jid} {state} {p.source} {p.via} {p.kind} {p.t_call:.6f} "
                            f"{p.t_return:.6f} {due}\n")


def build_items(args: argparse.Namespace, rng: random.Random, start: datetime
                ) -> list[tuple[str, dict[str, Any]]]:
    """(kind, enqueue_many item) for every up-front job, regular, scheduled and flaky
    interleaved."""
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


def enqueue_bulk(jobs: Jobs, items: list[tuple[str, dict[str, Any]]], ledger: Ledger,
                 batch: int = 1000) -> None:
    """``enqueue_many`` per ``batch``; every id it returns is acknowledged."""
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        t_call = time.time()
        ids = jobs.enqueue_many([item for _, item in chunk])
        t_return = time.time()
        for jid, (kind, item) in zip(ids, chunk, strict=True):
            due = item["execute_at"].timestamp() if "execute_at" in item else None
            ledger.add(jid, Published("bulk", "enqueue_many", kind, t_call, t_return, due))


#: ``publish(call number, job id, kind, ms) -> via``: one publish call of a producer.
Publish = Callable[[int, str, str, int], str]


def boundary_publish(jobs: Jobs) -> Publish:
    """The installed app's two front doors, alternately: ``jobs.enqueue`` and the task's
    ``apply_async`` (``delay`` with the id chosen up front, so a raised call's id is
    known).

    The task is the app's own (``app.tasks[name]``), not the module's ``@boundary_job``
    object: that is Celery's shared-task proxy, which resolves through ``current_app``,
    a thread-local (``celery/_state.py``), so in a thread other than the one that made
    the app current it is Celery's default app's task (broker ``amqp://localhost``)."""
    from benchmarks.apps import soak_app

    def publish(i: int, jid: str, kind: str, ms: int) -> str:
        task = soak_app.app.tasks[soak_app.FLAKY if kind == "flaky" else soak_app.WORK]
        if i % 2 == 0:
            jobs.enqueue(task.name, {"ms": ms}, queue=soak_app.QUEUE, job_id=jid)
            return "jobs.enqueue"
        task.apply_async(kwargs={"ms": ms}, task_id=jid)
        return "task.apply_async"

    return publish


def plain_app(url: str) -> Celery:
    """A Celery app without ``install()`` on the soak's Redis: kombu's own transport, no
    record written at publish (a producer not upgraded yet)."""
    from celery import Celery

    return Celery("soak-plain", broker=url, set_as_current=False)


def plain_publish(app: Celery) -> Publish:
    from benchmarks.apps.soak_app import FLAKY, QUEUE, WORK

    def publish(i: int, jid: str, kind: str, ms: int) -> str:
        app.send_task(FLAKY if kind == "flaky" else WORK, kwargs={"ms": ms}, queue=QUEUE,
                      task_id=jid)
        return "send_task"

    return publish


class Producer(threading.Thread):
    """Publishes ``rate`` calls/s until ``until`` (epoch) through ``publish``; a call that
    returned is acknowledged, one that raised is recorded as raised with its id. A call
    that blocks (Redis paused) delays the next ones; no burst catches up."""

    def __init__(self, source: str, publish: Publish, ledger: Ledger, rate: float,
                 until: float, seed: int, stop: threading.Event) -> None:
        super().__init__(name=f"producer-{source}", daemon=True)
        self.source, self.publish, self.ledger = source, publish, ledger
        self.rate, self.until, self.stop = rate, until, stop
        self.rng = random.Random(seed)
        self.calls = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        period = 1.0 / self.rate
        next_t = time.time()
        try:
            while not self.stop.is_set() and time.time() < self.until:
                if self.stop.wait(max(0.0, next_t - time.time())):
                    break
                next_t = max(next_t + period, time.time())
                jid = str(uuid.uuid4())
                kind = "flaky" if self.rng.random() < FLAKY_SHARE else "work"
                ms = self.rng.randint(1, 20)
                t_call = time.time()
                try:
                    via = self.publish(self.calls, jid, kind, ms)
                except Exception as exc:  # raised: its job may or may not be stored
                    self.ledger.add(jid, Published(
                        self.source, "?", kind, t_call, time.time(),
                        error=f"{type(exc).__name__}: {exc}"[:300]))
                else:
                    self.ledger.add(jid, Published(self.source, via, kind, t_call,
                                                   time.time()))
                self.calls += 1
        except BaseException as exc:  # reported by the run
            self.error = exc


# -- faults -------------------------------------------------------------------------------


@dataclass
class Fault:
    """One Redis fault: a pause (SIGSTOP for ``seconds``, then SIGCONT) or a crash
    (SIGKILL, restarted on the same AOF ``seconds`` later). ``at_s``: planned offset from
    the window's start; ``t_start``/``t_end``: when it really began and ended (epoch)."""

    kind: str  # pause | crash
    seconds: float
    at_s: float = 0.0
    t_start: float | None = None
    t_end: float | None = None
    pid: int | None = None  # the redis-server stopped or killed


def fault_span(pauses: list[float], down_s: float, crash: bool) -> float:
    """Seconds a window needs for these faults: the lead, each fault and a gap after it."""
    faults = [*pauses, *([down_s] if crash else [])]
    return LEAD_S + sum(faults) + GAP_S * len(faults)


def plan_faults(rng: random.Random, window_s: float, pauses: list[float], down_s: float,
                crash: bool) -> list[Fault]:
    """The Redis faults in a random order at random moments of the window, none
    overlapping: the window's slack is split at random between them."""
    faults = [Fault("pause", s) for s in pauses] + ([Fault("crash", down_s)] if crash else [])
    rng.shuffle(faults)
    slack = max(0.0, window_s - fault_span(pauses, down_s, crash))
    cuts = sorted(rng.uniform(0, slack) for _ in faults)
    t, used = LEAD_S, 0.0
    for fault, cut in zip(faults, cuts, strict=True):
        t += cut - used
        used = cut
        fault.at_s = round(t, 3)
        t += fault.seconds + GAP_S
    return faults


class FaultRunner(threading.Thread):
    """Runs the planned Redis faults from ``start`` (epoch). A paused Redis always gets
    its SIGCONT, also when ``stop`` is set (the run ends or is interrupted)."""

    def __init__(self, server: RedisServer, faults: list[Fault], start: float,
                 stop: threading.Event) -> None:
        super().__init__(name="redis-faults", daemon=True)
        self.server, self.faults, self.start_t, self.stop = server, faults, start, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for fault in self.faults:
                if self.stop.wait(max(0.0, self.start_t + fault.at_s - time.time())):
                    return
                proc = self.server.proc
                if proc is None:
                    raise RuntimeError("redis-server is not running")
                fault.pid = proc.pid
                if fault.kind == "pause":
                    log(f"SIGSTOP redis-server for {fault.seconds:g} s")
                    fault.t_start = time.time()
                    os.kill(proc.pid, signal.SIGSTOP)
                    try:
                        self.stop.wait(fault.seconds)
                    finally:
                        os.kill(proc.pid, signal.SIGCONT)
                        fault.t_end = time.time()
                    log(f"SIGCONT redis-server after {fault.t_end - fault.t_start:.1f} s")
                else:
                    log(f"SIGKILL redis-server; back in {fault.seconds:g} s")
                    fault.t_start = time.time()
                    self.server.restart(down_s=fault.seconds, crash=True)
                    fault.t_end = time.time()
                    log(f"redis-server back after {fault.t_end - fault.t_start:.1f} s")
        except BaseException as exc:  # reported by the run
            self.error = exc


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


def all_records(client: redis.Redis, prefix: str,
                fields: tuple[str, ...] = ("status",)) -> dict[str, list[Any]]:
    """``fields`` of every job record in the store (SCAN), by job id."""
    head = f"{prefix}:job:"
    ids = [key[len(head):] for key in client.scan_iter(match=f"{head}*", count=1000)
           if ":" not in key[len(head):]]
    return dict(zip(ids, read_statuses(client, prefix, ids, fields), strict=True))


@dataclass
class Chaos:
    """What the run did to the system, with wall-clock (epoch) times."""

    faults: list[Fault] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    stopped_at: float | None = None  # when the run stopped the remaining workers
    poll_errors: int = 0

    def death_of(self, host: str) -> float | None:
        """When ``host``'s process group died: its SIGKILL, its unexpected exit (as seen
        by the run, so a bound), or the run's final stop."""
        for kill in self.kills:
            if kill["worker"] == host:
                return float(kill["t"])
        for exit_ in self.unexpected_exits:
            if exit_["worker"] == host:
                return float(exit_["t"])
        return self.stopped_at


@dataclass
class Window:
    """The fault window and what runs during it."""

    start: float
    end: float
    producers: list[Producer]
    faults: FaultRunner | None

    def busy(self) -> bool:
        return (time.time() < self.end or any(p.is_alive() for p in self.producers)
                or (self.faults is not None and self.faults.is_alive()))


def drain(args: argparse.Namespace, rng: random.Random, server: RedisServer,
          workers: list[Worker], spawn: Callable[[], Worker], ledger: Ledger,
          window: Window, chaos: Chaos, t0: float) -> tuple[set[str], float]:
    """Kill workers during the window, and wait until every acknowledged job's record
    is terminal and no record in the store is left non-terminal, or the deadline;
    returns the acknowledged ids not terminal and when the last record became terminal."""
    from benchmarks.apps.soak_app import KEY_PREFIX, QUEUE

    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2,
                                  socket_connect_timeout=2)
    pending: set[str] = set()
    seen = 0
    now = time.monotonic()
    next_kill = now + rng.uniform(*args.kill_range) if args.kill_range else float("inf")
    next_poll = next_scan = now
    next_print = now + 10
    last_done = time.time()
    deadline = t0 + args.deadline_s
    others_left = -1  # records outside the acknowledged set still non-terminal (-1: unread)
    try:
        while time.time() < deadline:
            for thread in [*window.producers, window.faults]:
                if thread is not None and thread.error is not None:
                    raise RuntimeError(f"{thread.name} failed: {thread.error!r}")
            new = ledger.acked_since(seen)
            seen += len(new)
            pending.update(new)
            if not pending and not window.busy() and others_left == 0:
                break
            now = time.monotonic()
            if now >= next_poll:
                # each poll reads every pending record: less often while many are left
                next_poll = now + (3.0 if len(pending) > 1000 else 1.0)
                ids = list(pending)
                try:
                    statuses = read_statuses(client, KEY_PREFIX, ids)
                    if not pending and not window.busy() and now >= next_scan:
                        next_scan = now + 3.0
                        others_left = sum(1 for (st,) in all_records(client, KEY_PREFIX)
                                          .values() if st not in TERMINAL)
                except (redis.exceptions.RedisError, OSError):
                    chaos.poll_errors += 1
                else:
                    done = {jid for jid, (status,) in zip(ids, statuses, strict=True)
                            if status in TERMINAL}
                    if done:
                        pending -= done
                        last_done = time.time()
            for w in list(workers):  # a worker that died on its own is reported and replaced
                if w.proc is not None and not w.alive and not w.killed:
                    w.kill()  # whatever is left of its group
                    chaos.unexpected_exits.append({"t": time.time(), "worker": w.hostname,
                                                   "pid": w.proc.pid,
                                                   "rc": w.proc.returncode})
                    log(f"[red]worker {w.hostname} exited by itself "
                        f"(rc {w.proc.returncode}); starting a replacement[/red]")
                    spawn()
                w.check_ready()
            if now >= next_kill and time.time() < window.end and (
                    args.max_kills is None or len(chaos.kills) < args.max_kills):
                next_kill = now + rng.uniform(*args.kill_range)  # type: ignore[misc]
                candidates = [w for w in workers if w.alive and w.ready] or \
                    [w for w in workers if w.alive]
                if candidates:
                    victim = rng.choice(candidates)
                    assert victim.proc is not None
                    t_kill = time.time()
                    victim.kill()
                    new_worker = spawn()
                    chaos.kills.append({"t": t_kill, "worker": victim.hostname,
                                        "pid": victim.proc.pid,
                                        "replacement": new_worker.hostname})
                    log(f"SIGKILL {victim.hostname} (pid group {victim.proc.pid}); "
                        f"replacement {new_worker.hostname}")
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
                elif others_left > 0 and not pending:
                    detail = f"; {others_left} other records not terminal"
                counts = ledger.counts()
                produced = ", ".join(f"{k} {v['acked']}+{v['raised']} raised"
                                     for k, v in counts.items() if k != "bulk")
                log(f"terminal {seen - len(pending):,}/{seen:,} acknowledged "
                    f"({produced or 'no producers'}); {alive} workers alive; "
                    f"kills {len(chaos.kills)}; elapsed {time.time() - t0:.0f} s{detail}")
            time.sleep(0.25)
    finally:
        client.close()
    return pending, last_done


# -- analysis -----------------------------------------------------------------------------


@dataclass
class Run:
    """One handler run as noted by its pool child: [start, end]; ``end`` None when the
    child died mid-run (outcome ``cut``)."""

    jid: str
    host: str
    pid: int
    start: float
    end: float | None
    outcome: str  # ok | fail | cut

    def until(self, chaos: Chaos) -> float:
        """The run's end, or for a cut run its worker's death (infinity if unknown)."""
        if self.end is not None:
            return self.end
        death = chaos.death_of(self.host)
        return death if death is not None else float("inf")

    def brief(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "start": round(self.start, 6),
                "end": None if self.end is None else round(self.end, 6),
                "outcome": self.outcome}


@dataclass
class Notes:
    """Handler runs by job id (each list sorted by start), and lines that did not parse."""

    runs: dict[str, list[Run]]
    torn_lines: int


def read_notes(runs_dir: Path) -> Notes:
    """Pair each ``start`` with the next ``ok``/``fail`` of the same id in the same
    per-process file (a pool child runs one job at a time)."""
    runs: dict[str, list[Run]] = defaultdict(list)
    torn = 0
    for path in sorted(runs_dir.glob("*.log")):
        open_runs: dict[str, Run] = {}
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            try:
                jid, kind, host, pid, t = parts[0], parts[1], parts[2], int(parts[3]), \
                    float(parts[4])
            except (IndexError, ValueError):
                torn += 1
                continue
            if len(parts) != 5:
                torn += 1
            elif kind == "start":
                open_runs[jid] = Run(jid, host, pid, t, None, "cut")
                runs[jid].append(open_runs[jid])
            elif jid in open_runs:
                run = open_runs.pop(jid)
                run.end, run.outcome = t, kind
            else:
                torn += 1  # an end without its start
    for job_runs in runs.values():
        job_runs.sort(key=lambda r: r.start)
    return Notes(dict(runs), torn)


def concurrent_runs(notes: Notes, chaos: Chaos) -> dict[str, list[dict[str, Any]]]:
    """Jobs two of whose runs intersect in time: each such pair, by job id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for jid, runs in notes.runs.items():
        for i, a in enumerate(runs):
            for b in runs[i + 1:]:
                if b.start <= a.until(chaos) and a.start <= b.until(chaos):
                    found.setdefault(jid, []).append({"first": a.brief(),
                                                      "second": b.brief()})
    return found


def explain_repeats(notes: Notes, chaos: Chaos, scan: LogScan) -> list[dict[str, Any]]:
    """Every run followed by another run of the same job, with why the job ran again:

    - ``retry after a failed attempt (its policy)``: the run failed (the flaky job's
      first attempt) and its worker logged the retry (Celery logs it once published);
    - ``killed after the body ran, before the ack`` / ``killed after a failed attempt,
      before its retry was published`` / ``killed mid-run``: the worker that ran it was
      SIGKILLed after the run started (after it ended, unless cut) and before the next
      run started, and that worker logged neither the completion nor the retry;
    - ``unexplained``: anything else (e.g. a run again after a logged completion).
    """
    kill_of = {k["worker"]: k for k in chaos.kills}
    out: list[dict[str, Any]] = []
    for jid, runs in sorted(notes.runs.items()):
        for run, nxt in itertools.pairwise(runs):
            row: dict[str, Any] = {"job_id": jid, "run": run.brief(), "next": nxt.brief()}
            kill = kill_of.get(run.host)
            stem = run.host.split("@")[0]
            logged = stem in scan.completed_by.get(jid, set())
            retried = stem in scan.retried_by.get(jid, set())
            if run.outcome == "fail" and retried:
                row["reason"] = "retry after a failed attempt (its policy)"
            elif (kill is not None and not logged and not retried
                  and (run.end if run.end is not None else run.start)
                  <= kill["t"] <= nxt.start):
                row["reason"] = {
                    "ok": "killed after the body ran, before the ack",
                    "fail": "killed after a failed attempt, before its retry was published",
                    "cut": "killed mid-run"}[run.outcome]
                row["killed_worker"] = run.host
                row["killed_pid"] = kill["pid"]
                row["killed_at"] = round(kill["t"], 3)
                row["killed_at_utc"] = utc(kill["t"])
            else:
                row["reason"] = "unexplained"
                row["why_not"] = (
                    "its worker logged the completion" if logged
                    else "its worker logged no retry and was not killed between the runs"
                    if run.outcome == "fail"
                    else "its worker was not killed between the two runs")
            out.append(row)
    return out


def redeliveries(notes: Notes, chaos: Chaos, scan: LogScan,
                 lease_s: float) -> dict[str, Any]:
    """Jobs a killed worker held and never finished, and when another worker started
    them: delay = that start minus the kill. Held = received by the killed worker (its
    log), neither completed there nor ended there by a failed attempt; this counts the
    prefetched ones as well as the runs cut mid-handler. ``bound_s`` is the documented
    bound (the lease twice: lapsed, then swept)."""
    delays: list[tuple[float, str, str]] = []
    never_rerun: list[str] = []
    for kill in chaos.kills:
        stem = kill["worker"].split("@")[0]
        for jid in scan.received_by.get(stem, ()):
            if stem in scan.completed_by.get(jid, set()):
                continue
            runs = notes.runs.get(jid, [])
            there = [r for r in runs if r.host == kill["worker"]]
            if there and there[-1].outcome == "fail":
                continue  # its retry was published: not a redelivery
            later = [r for r in runs if r.start >= kill["t"]]
            if later:
                delays.append((later[0].start - kill["t"], jid, kill["worker"]))
            elif not any(r.outcome == "ok" for r in runs):
                never_rerun.append(jid)
    delays.sort()
    bound = 2 * lease_s
    return {
        "rerun": len(delays),
        "bound_s": bound,
        "over_bound": [{"job_id": jid, "killed_worker": host, "delay_s": round(d, 2)}
                       for d, jid, host in delays if d > bound],
        "never_rerun": never_rerun,
        "max_s": round(delays[-1][0], 2) if delays else None,
        "p50_s": round(delays[len(delays) // 2][0], 2) if delays else None,
        "min_s": round(delays[0][0], 2) if delays else None,
    }


_RECEIVED_RE = re.compile(rb"Task \S+\[([0-9a-f-]{36})\] received")
_RETRY_RE = re.compile(rb"Task \S+\[([0-9a-f-]{36})\] retry: ")
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


@dataclass
class LogScan:
    """Notable worker log lines counted, and which worker logs logged each completion."""

    counts: dict[str, int]
    skip_reasons: dict[str, int]
    completed_by: dict[str, set[str]]  # job id -> worker log names (soak-w<n>)
    completions: Counter[str]  # job id -> completions logged
    received_by: dict[str, set[str]]  # worker log name -> job ids it received
    retried_by: dict[str, set[str]]  # job id -> worker log names that logged its retry
    lapsed_at: list[float]  # when a sweep delivered a lapsed lease again (epoch, sorted)

    def logged_twice(self) -> list[str]:
        return sorted(jid for jid, n in self.completions.items() if n > 1)


def scan_logs(log_dir: Path) -> LogScan:
    """Counts of notable worker log lines, and completions logged per job id."""
    counts: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    completed_by: dict[str, set[str]] = defaultdict(set)
    received_by: dict[str, set[str]] = defaultdict(set)
    retried_by: dict[str, set[str]] = defaultdict(set)
    lapsed_at: list[float] = []
    skip_reasons: Counter[str] = Counter()
    for path in sorted(log_dir.glob("soak-w*.log")):
        with path.open("rb") as f:
            for line in f:
                m = _COMPLETED_RE.search(line)
                if m:
                    jid = m.group(1).decode()
                    completed[jid] += 1
                    completed_by[jid].add(path.stem)
                    continue
                m = _RECEIVED_RE.search(line)
                if m:
                    received_by[path.stem].add(m.group(1).decode())
                    continue
                m = _RETRY_RE.search(line)
                if m:
                    retried_by[m.group(1).decode()].add(path.stem)
                    continue
                for name, needle in _PATTERNS.items():
                    if needle in line:
                        counts[name] += 1
                        if name == "lease_lapsed":
                            lapsed_at.extend(_log_time(line))
                        if name == "skipping_delivery":
                            r = re.search(rb"reason=(\S+)", line)
                            skip_reasons[r.group(1).decode() if r else "?"] += 1
    return LogScan(dict(counts), dict(skip_reasons), dict(completed_by), completed,
                   dict(received_by), dict(retried_by), sorted(lapsed_at))


def _log_time(line: bytes) -> list[float]:
    """The epoch time of a worker log line (Celery's ``[YYYY-MM-DD HH:MM:SS,mmm: ...``,
    local time), as a one-item list; empty when it has none."""
    try:
        stamp = datetime.strptime(line[1:24].decode(), "%Y-%m-%d %H:%M:%S,%f")
    except (UnicodeDecodeError, ValueError):
        return []
    return [stamp.timestamp()]


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


def utc(t: float | None) -> str | None:
    return (None if t is None
            else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"))


def analyse(server: RedisServer, jobs: Jobs, ledger: Ledger, chaos: Chaos,
            run_dir: Path) -> dict[str, Any]:
    """The figures of the run, read from the store, the handler notes and the worker logs;
    ``evidence`` holds the record, runs and log lines of each job a finding names."""
    from benchmarks.apps.soak_app import KEY_PREFIX, QUEUE
    from boundary_celery.adapters.redis_keys import Keys

    acked = list(ledger.acked)
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=10)
    try:
        records = all_records(client, KEY_PREFIX, ("status", "attempts", "error"))
        pipe = client.pipeline(transaction=False)
        failed_ids = [jid for jid, row in records.items() if row[0] == "failed"]
        for jid in failed_ids:
            pipe.zscore(Keys(KEY_PREFIX).dlq, jid)
        in_dlq = {jid for jid, score in zip(failed_ids, pipe.execute(), strict=True)
                  if score is not None}
        notes = read_notes(run_dir / "runs")
        scan = scan_logs(run_dir / "workers")
        lost: dict[str, str] = {}
        for jid in acked:
            status, _, error = records.get(jid, [None, None, None])
            ran = any(r.outcome == "ok" for r in notes.runs.get(jid, []))
            if status is None:
                lost[jid] = "no record"
            elif status not in TERMINAL:
                lost[jid] = f"record {status}"
            elif status == "completed" and not ran:
                lost[jid] = "completed, but its handler never returned"
            elif status == "failed" and jid not in in_dlq:
                lost[jid] = "failed, not in the DLQ"
            elif status == "failed" and not error:
                lost[jid] = "failed without a reason"
        non_terminal = {jid: str(row[0]) for jid, row in records.items()
                        if row[0] not in TERMINAL}
        concurrent = concurrent_runs(notes, chaos)
        repeats = explain_repeats(notes, chaos, scan)
        unexplained = sorted({r["job_id"] for r in repeats if r["reason"] == "unexplained"})
        # a record not terminal whose publish was acknowledged is also lost: quote once
        evidence_ids = list(dict.fromkeys(
            [*list(lost)[:EVIDENCE], *list(non_terminal)[:EVIDENCE],
             *list(concurrent)[:EVIDENCE], *unexplained[:EVIDENCE]]))
        places = where(client, KEY_PREFIX, QUEUE, evidence_ids) if evidence_ids else {}
        evidence = {jid: {"record": dict(client.hgetall(f"{KEY_PREFIX}:job:{jid}")),
                          "message_is": places.get(jid),
                          "published": asdict(ledger.acked.get(jid)
                                              or ledger.raised[jid])
                          if jid in ledger.acked or jid in ledger.raised else None,
                          "runs": [r.brief() for r in notes.runs.get(jid, [])],
                          "worker_log_lines": log_lines_about(run_dir / "workers", [jid],
                                                              limit=60)}
                    for jid in evidence_ids}
    finally:
        client.close()
    stats = jobs.queue_stats(QUEUE)
    status_all = Counter(str(row[0]) for row in records.values())
    raised_status = Counter(str(records[jid][0]) if jid in records else "no record"
                            for jid in ledger.raised)
    kinds = Counter(f"{p.source}/{p.kind}" for p in ledger.acked.values())
    flaky = [jid for jid, p in ledger.acked.items() if p.kind == "flaky"]
    early = [jid for jid, p in ledger.acked.items() if p.due is not None and any(
        r.start < p.due - 0.001 for r in notes.runs.get(jid, []))]
    known = set(ledger.acked) | set(ledger.raised)
    reasons = Counter(r["reason"] for r in repeats)
    return {
        "acknowledged": len(acked),
        "raised": len(ledger.raised),
        "by_source": ledger.counts(),
        "acknowledged_by_kind": dict(sorted(kinds.items())),
        "records": len(records),
        "records_by_status": dict(status_all),
        "raised_records": dict(raised_status),
        "raised_errors": dict(Counter(p.error.split(":")[0]
                                      for p in ledger.raised.values())),
        "lost": len(lost),
        "lost_by_reason": dict(Counter(lost.values())),
        "lost_ids": list(lost)[:50],
        "non_terminal": len(non_terminal),
        "non_terminal_by_status": dict(Counter(non_terminal.values())),
        "non_terminal_ids": list(non_terminal)[:50],
        "concurrent": len(concurrent),
        "concurrent_runs": dict(list(concurrent.items())[:50]),
        "repeated_runs": len(repeats),
        "repeated_jobs": len({r["job_id"] for r in repeats}),
        "repeated_by_reason": dict(reasons),
        "repeated": repeats[:200],
        "unexplained_repeats": len(unexplained),
        "unexplained_repeat_ids": unexplained[:50],
        "handler_runs": sum(len(v) for v in notes.runs.values()),
        "handler_never_returned": sum(1 for jid in acked if not any(
            r.outcome == "ok" for r in notes.runs.get(jid, []))),
        "completed_twice": max(0, stats.succeeded_total - status_all["completed"]),
        "succeeded_total": stats.succeeded_total,
        "succeeded_total_minus_completed_records":
            stats.succeeded_total - status_all["completed"],
        "failed_total": stats.failed_total,
        "retried_total": stats.retried_total,
        "completion_logged_more_than_once": len(scan.logged_twice()),
        "completion_logged_more_than_once_ids": scan.logged_twice()[:20],
        "records_by_attempts": dict(sorted(Counter(
            str(int(row[1] or 0)) for row in records.values()).items())),
        "flaky_failed_once": sum(1 for jid in flaky if sum(
            1 for r in notes.runs.get(jid, []) if r.outcome == "fail") == 1),
        "flaky": len(flaky),
        "scheduled_started_early": len(early),
        "notes_for_unknown_ids": len(set(notes.runs) - known),
        "notes_torn_lines": notes.torn_lines,
        "dlq_size": jobs.dlq_size(),
        "failed_in_dlq": len(in_dlq),
        "scheduled_left": jobs.scheduled_count(),
        "queue_left": jobs.queue_size(QUEUE),
        "redelivery": redeliveries(notes, chaos, scan, jobs.settings.workers.lease_s),
        "worker_log": {"counts": scan.counts, "skip_reasons": scan.skip_reasons},
        "leases_delivered_again_at": [round(t, 3) for t in scan.lapsed_at],
        "evidence": evidence,
    }


def verdict(f: dict[str, Any]) -> list[str]:
    """What failed: empty when the invariant held."""
    return [name for name, bad in (
        ("lost", f["lost"]), ("non-terminal", f["non_terminal"]),
        ("concurrent runs", f["concurrent"]), ("completed twice", f["completed_twice"]),
    ) if bad]


def fault_rows(chaos: Chaos, t0: float) -> list[dict[str, Any]]:
    """Every fault of the run in time order: Redis pauses and crash, worker kills."""
    rows = [{"fault": f"redis SIGSTOP {f.seconds:g} s" if f.kind == "pause"
             else f"redis SIGKILL + restart ({f.seconds:g} s down)",
             "at_s": None if f.t_start is None else round(f.t_start - t0, 2),
             "utc": utc(f.t_start), "lasted_s": None if f.t_start is None or f.t_end is None
             else round(f.t_end - f.t_start, 2), "pid": f.pid}
            for f in chaos.faults]
    rows += [{"fault": f"worker SIGKILL {k['worker']}", "at_s": round(k["t"] - t0, 2),
              "utc": utc(k["t"]), "lasted_s": None, "pid": k["pid"]} for k in chaos.kills]
    rows += [{"fault": f"worker exited by itself {e['worker']} (rc {e['rc']})",
              "at_s": round(e["t"] - t0, 2), "utc": utc(e["t"]), "lasted_s": None,
              "pid": e["pid"]} for e in chaos.unexpected_exits]
    return sorted(rows, key=lambda r: float("inf") if r["at_s"] is None else r["at_s"])


def tables(result: dict[str, Any]) -> list[Table]:
    f = result["figures"]
    meta = result["meta"]
    t = Table(title=f"soak: {f['acknowledged']:,} acknowledged jobs, {meta['workers']} "
                    f"workers x -c {meta['concurrency']}, shipped defaults")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("note")

    def row(name: str, value: Any, note: str = "", bad: bool = False) -> None:
        text = f"{value:,}" if isinstance(value, int) else str(value)
        t.add_row(name, f"[bold red]{text}[/bold red]" if bad else text, note)

    def kv(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                         for k, v in d.items())

    row("acknowledged (publish returned)", f["acknowledged"],
        "; ".join(f"{k}: {v['acked']:,}" for k, v in f["by_source"].items()))
    row("raised (publish raised)", f["raised"],
        "; ".join(filter(None, [
            ", ".join(f"{k}: {v['raised']}" for k, v in f["by_source"].items()
                      if v["raised"]),
            ("records: " + kv(f["raised_records"])) if f["raised"] else ""])))
    row("duration (s)", result["duration_s"], "first enqueue to the last terminal record")
    row("faults", len(result["faults"]), "see the faults table")
    row("lost (acknowledged, not ended)", f["lost"], kv(f["lost_by_reason"]),
        bad=f["lost"] > 0)
    row("records left non-terminal", f["non_terminal"], kv(f["non_terminal_by_status"]),
        bad=f["non_terminal"] > 0)
    row("concurrent runs (overlapping)", f["concurrent"], "jobs two of whose runs overlap",
        bad=f["concurrent"] > 0)
    row("repeated runs", f["repeated_runs"], kv(f["repeated_by_reason"]),
        bad=f["unexplained_repeats"] > 0)
    row("records by status", kv(f["records_by_status"]))
    row("completed twice", f["completed_twice"],
        f"succeeded counter {f['succeeded_total']:,} - completed records = "
        f"{f['succeeded_total_minus_completed_records']}",
        bad=f["succeeded_total_minus_completed_records"] != 0)
    row("completion logged more than once", f["completion_logged_more_than_once"],
        "second write refused by the record's terminal status")
    row("failed / retried counters", f"{f['failed_total']} / {f['retried_total']}",
        f"flaky jobs {f['flaky']}, failed once: {f['flaky_failed_once']}")
    row("DLQ size", f["dlq_size"], f"failed records in the DLQ: {f['failed_in_dlq']}")
    row("scheduled jobs started early", f["scheduled_started_early"],
        bad=f["scheduled_started_early"] > 0)
    r = f["redelivery"]
    row("max redelivery delay (s)", r["max_s"] if r["max_s"] is not None else "n/a",
        f"kill -> next start of the {r['rerun']} jobs killed workers held (p50 "
        f"{r['p50_s']} s); over {r['bound_s']:g} s (2 x lease): {len(r['over_bound'])}",
        bad=bool(r["over_bound"]))
    lapses = Counter(round(t - result["t0"]) for t in f["leases_delivered_again_at"])
    row("leases delivered again (sweep)", len(f["leases_delivered_again_at"]),
        ("at + " + ", ".join(f"{k} s ({v})" for k, v in sorted(lapses.items())))
        if lapses else "")
    row("records by attempts", kv(f["records_by_attempts"]))
    row("worker log", kv(dict(sorted(f["worker_log"]["counts"].items()))) or "-")
    ft = Table(title="faults (at: seconds after the first enqueue)")
    for col in ("fault", "at (s)", "UTC", "lasted (s)", "pid"):
        ft.add_column(col, justify="left" if col in ("fault", "UTC") else "right")
    for fr in result["faults"]:
        ft.add_row(fr["fault"], "-" if fr["at_s"] is None else f"{fr['at_s']:.1f}",
                   fr["utc"] or "not run", "" if fr["lasted_s"] is None
                   else f"{fr['lasted_s']:.1f}", str(fr["pid"] or ""))
    rt = Table(title="repeated runs and why (first 30)")
    for col in ("job", "reason", "first run (host pid outcome)", "killed pid", "killed at"):
        rt.add_column(col)
    for rep in f["repeated"][:30]:
        run = rep["run"]
        rt.add_row(rep["job_id"][:13], rep["reason"] if rep["reason"] != "unexplained"
                   else f"[bold red]unexplained[/bold red]: {rep['why_not']}",
                   f"{run['host']} {run['pid']} {run['outcome']}",
                   str(rep.get("killed_pid", "")), str(rep.get("killed_at_utc") or ""))
    return [ft, t, rt] if f["repeated"] else [ft, t]


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None, Path | None]:
    """One soak run: (exit code, the result, the JSON report's path)."""
    rng = random.Random(args.seed)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.out / "tmp" / f"soak-{stamp}"
    (run_dir / "runs").mkdir(parents=True, exist_ok=True)
    (run_dir / "workers").mkdir(parents=True, exist_ok=True)
    shown_dir = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.soak " + " ".join(args.argv),
        "started": started.isoformat(timespec="seconds"), "seed": args.seed,
        "workers": args.workers, "concurrency": args.concurrency, "pool": "prefork",
        "jobs_up_front": args.jobs, "scheduled": args.scheduled, "flaky": args.flaky,
        "window_s": args.window_s, "rate_per_producer": args.rate,
        "pauses_s": args.pause_list, "redis_down_s": args.redis_down_s,
        "redis_crash": not args.no_redis_restart, "kill_every_s": args.kill_range,
        "max_kills": args.max_kills, "schedule_window_s": args.schedule_window_s,
        "deadline_s": args.deadline_s, "redis_args": list(AOF_ARGS), "cpus": os.cpu_count(),
        "git": git_state(), "run_dir": str(shown_dir),
    }
    server = RedisServer(extra_args=AOF_ARGS, workdir_prefix="boundary-soak-redis-")
    workers: list[Worker] = []
    chaos = Chaos()
    ledger = Ledger()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    jobs: Jobs | None = None
    plain: Celery | None = None
    try:
        server.start()
        meta["redis_version"] = server.version()
        os.environ["SOAK_REDIS_URL"] = server.url
        os.environ["SOAK_RUNS_DIR"] = str(run_dir / "runs")
        from benchmarks.apps import soak_app

        jobs = soak_app.jobs
        plain = plain_app(server.url)
        with plain.connection_for_write() as conn:
            plain_transport = f"{type(conn.transport).__module__}.{type(conn.transport).__name__}"
        meta["plain_producer_transport"] = plain_transport
        meta["settings"] = {"lease_s": jobs.settings.workers.lease_s,
                            "heartbeat_interval_s": jobs.settings.workers.heartbeat_interval_s,
                            "scheduler_interval_ms": jobs.settings.scheduler.interval_ms,
                            "redis_timeout_ms": jobs.settings.redis.timeout_ms}
        log(f"redis-server {meta['redis_version']} on port {server.port} (AOF, fsync always); "
            f"run dir {shown_dir}; seed {args.seed}; plain producer on {plain_transport}")
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
        enqueue_bulk(jobs, build_items(args, rng, datetime.now(UTC)), ledger)
        log(f"enqueued {len(ledger.acked):,} jobs in {time.time() - t0:.1f} s")
        start = time.time()
        chaos.faults = plan_faults(rng, args.window_s, args.pause_list, args.redis_down_s,
                                   not args.no_redis_restart)
        producers = [] if not args.rate else [
            Producer("boundary", boundary_publish(jobs), ledger, args.rate,
                     start + args.window_s, args.seed + 1, stop),
            Producer("plain", plain_publish(plain), ledger, args.rate,
                     start + args.window_s, args.seed + 2, stop)]
        runner = FaultRunner(server, chaos.faults, start, stop) if chaos.faults else None
        window = Window(start, start + args.window_s, producers, runner)
        threads = [*producers, *([runner] if runner else [])]
        for thread in threads:
            thread.start()
        log(f"fault window of {args.window_s:g} s: producers at {args.rate:g}/s each; "
            "redis faults at +" + ", +".join(
                f"{f.at_s:.1f} s ({f.kind} {f.seconds:g} s)"
                for f in sorted(chaos.faults, key=lambda f: f.at_s)))
        pending, t_end = drain(args, rng, server, workers, spawn, ledger, window, chaos, t0)
        log(f"drain over after {time.time() - t0:.1f} s; {len(pending):,} acknowledged "
            "jobs not terminal")
        stop.set()
        for thread in threads:
            thread.join(30)
        ledger.save(run_dir / "jobs.tsv")
        chaos.stopped_at = time.time()
        stop_workers(workers)
        figures = analyse(server, jobs, ledger, chaos, run_dir)
    except KeyboardInterrupt:
        log("[red]interrupted: stopping workers and redis-server[/red]")
        return 130, None, None
    finally:
        stop.set()  # a paused Redis gets its SIGCONT
        for thread in threads:
            thread.join(30)
        if chaos.stopped_at is None:
            chaos.stopped_at = time.time()
        stop_workers(workers)
        if jobs is not None:
            jobs.store.close()
        if plain is not None:
            plain.close()
        with contextlib.suppress(OSError):
            shutil.copy(server.log_path, run_dir / "redis.log")
        server.stop()
    result = {"meta": meta, "t0": t0, "duration_s": round(t_end - t0, 1),
              "verdict": verdict(figures), "figures": figures,
              "faults": fault_rows(chaos, t0),
              "chaos": {"faults": [asdict(f) for f in chaos.faults], "kills": chaos.kills,
                        "unexpected_exits": chaos.unexpected_exits,
                        "poll_errors": chaos.poll_errors}}
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["git_end"] = git_state()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"soak-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return (1 if result["verdict"] else 0), result, out


def report(result: dict[str, Any], out: Path) -> None:
    """The rich tables, the evidence for each finding, and the verdict."""
    for t in tables(result):
        console.print(t)
    f = result["figures"]
    for jid, ev in f["evidence"].items():
        console.print(f"[bold]evidence {jid}[/bold]: record {ev['record']}; message "
                      f"{ev['message_is']}; published {ev['published']}; runs {ev['runs']}")
        for line in ev["worker_log_lines"][:40]:
            console.print(line, markup=False)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    console.print(f"report: {shown}; worker logs, handler notes and jobs.tsv: "
                  f"{result['meta']['run_dir']}")
    if result["verdict"]:
        console.print("[bold red]FAIL[/bold red]: " + ", ".join(result["verdict"])
                      + " (evidence above and in the JSON)")
    else:
        console.print("[bold green]PASS[/bold green]: no acknowledged job lost, no record "
                      "left non-terminal, no concurrent run, nothing completed twice")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    # SIGTERM -> KeyboardInterrupt so the finally blocks stop workers and Redis.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code, result, out = run(args)
    if result is not None and out is not None:
        report(result, out)
    return code


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
