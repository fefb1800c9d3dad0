"""Scheduler lag with the shipped defaults: when is a due job moved into its queue list?

The schedulers run exactly as shipped, as separate processes on the private Redis: the
embedded scheduler of a real ``celery worker`` (``worker``) and/or the standalone
``celery -A app boundary scheduler`` (``standalone``), with the default ``[scheduler]``
settings (interval 5,000 ms, batch 500). The workers consume an empty queue, so nothing
takes the published jobs off their lists.

The load, over a window of ``window_s`` seconds that starts once every scheduler is up:

- ``spread``: most jobs, due at random milliseconds of the window's busy spans (2 s busy,
  1 s quiet, repeated), written straight into the scheduled set before the window (the
  soonest is then scheduled through ``jobs.enqueue``, whose wake-up tells the sleeping
  schedulers about the new head);
- ``burst``: ``burst`` jobs due at one and the same millisecond (mid-window);
- ``live``: jobs scheduled *during* the window through ``jobs.enqueue`` by a separate
  process, each due 50-1,500 ms later: those due before the scheduled set's head (in a
  quiet span) reach a sleeping scheduler only through the wake-up.

Measurement, consumer-free: the harness polls ``LLEN`` of the queue's five lists (one
round trip of five pre-packed commands per ``poll_s``, ~6 % of a core) and keeps every
change. Lists only grow, so the k-th
message pushed onto a list arrived between the poll that last saw fewer than k+1 and the
one that first saw k+1; lag = that first-seen time minus the job's due time (an upper
bound, coarser than the true move time by at most one poll period plus a round trip, the
``resolution`` reported). Once all is moved, the schedulers are stopped and the lists
read whole: the position of each message gives its job id, so duplicates (an id
published twice) and missing jobs are counted exactly.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from benchmarks.apps.common import NOOP, PRIORITY_STEPS, SEP
from benchmarks.workers import APPS, ROOT, Layout, WorkerGroup, worker_env

#: The scheduled jobs' queue: no worker consumes it, its lists only grow.
QUEUE = "bench-sched"
#: The queue the scheduler-carrying workers consume (always empty).
IDLE_QUEUE = "bench-sched-idle"
LEVELS = ["critical", "high", "normal", "low", "bulk"]
BUSY_S, QUIET_S = 2.0, 1.0
LIVE_DELAY_MS = (50, 1500)
RUNNER_KINDS = ("worker", "standalone")


def lists() -> list[str]:
    return [f"{QUEUE}{SEP}{s}" if s else QUEUE for s in PRIORITY_STEPS]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class StandaloneScheduler:
    """``celery -A benchmarks.apps.boundary_app boundary scheduler`` (shipped defaults)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        fd, name = tempfile.mkstemp(prefix="bench-scheduler-", suffix=".log")
        os.close(fd)
        self.log = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> StandaloneScheduler:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", APPS["boundary"], "boundary",
                 "scheduler"],
                env=worker_env(self.redis_url), cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while "boundary scheduler started" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"standalone scheduler did not start:\n{tail}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None
        self.log.unlink(missing_ok=True)


class Runners:
    """The scheduler processes: ``worker`` ones in one WorkerGroup, ``standalone`` ones."""

    def __init__(self, kinds: list[str], redis_url: str) -> None:
        unknown = set(kinds) - set(RUNNER_KINDS)
        if unknown or not kinds:
            raise ValueError(f"scheduler runners must be among {RUNNER_KINDS}: {kinds}")
        self.kinds = kinds
        self.redis_url = redis_url
        self.group: WorkerGroup | None = None
        self.standalone: list[StandaloneScheduler] = []

    def __enter__(self) -> Runners:
        try:
            workers = self.kinds.count("worker")
            if workers:
                self.group = WorkerGroup("boundary", Layout(workers, 1), self.redis_url,
                                         [IDLE_QUEUE]).start()
            for _ in range(self.kinds.count("standalone")):
                self.standalone.append(StandaloneScheduler(self.redis_url).start())
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> list[int]:
        """The processes running a scheduler loop (the workers' main processes)."""
        out = self.group.pids() if self.group is not None else []
        return out + [s.proc.pid for s in self.standalone if s.proc is not None]

    def stop(self) -> None:
        if self.group is not None:
            self.group.stop()
            self.group = None
        for s in self.standalone:
            s.stop()
        self.standalone.clear()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _produce(plan: list[list[Any]]) -> dict[str, Any]:
    """The live producer (``python -m benchmarks.scheduler_lag``, its own process): at each
    planned time, schedule one job due ``delay`` ms later through ``jobs.enqueue``."""
    from benchmarks.apps.boundary_app import jobs

    jobs.enqueue(NOOP, {"n": 0}, queue=IDLE_QUEUE)  # warm: connection, scripts
    out: list[tuple[str, int, str, float]] = []
    late = 0
    for at, delay_ms, level in plan:
        wait = at - time.time()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.05:
            late += 1
        due = datetime.fromtimestamp((int(time.time() * 1000) + delay_ms) / 1000, UTC)
        jid = jobs.enqueue(NOOP, {"n": 0}, queue=QUEUE, priority=level, execute_at=due)
        out.append((str(jid), int(due.timestamp() * 1000), "live", time.time()))
    return {"jobs": out, "late": late}


def _templates(jobs: Any, r: redis.Redis) -> dict[str, tuple[bytes, str, dict[bytes, bytes]]]:
    """Per level: a real scheduled message and record (then removed), to copy."""
    keys = jobs.store.keys
    out = {}
    for level in LEVELS:
        tid = str(jobs.enqueue(NOOP, {"n": 0}, queue=QUEUE, priority=level,
                               execute_at=datetime.now(UTC) + timedelta(hours=1)))
        payload = r.hget(keys.scheduled_messages, tid)
        assert payload is not None, "the scheduled message was not written"
        out[level] = (payload, tid, r.hgetall(keys.job(tid)))
        r.delete(keys.job(tid))
        r.zrem(keys.scheduled, tid)
        r.hdel(keys.scheduled_messages, tid)
    return out


def _fill(jobs: Any, r: redis.Redis, planned: list[tuple[str, int, str, str]]) -> None:
    """Write scheduled jobs straight into the set, payload hash and records (no wake-up)."""
    keys = jobs.store.keys
    tpl = _templates(jobs, r)
    chunk = 2000
    for start in range(0, len(planned), chunk):
        pipe = r.pipeline(transaction=False)
        part = planned[start:start + chunk]
        pipe.zadd(keys.scheduled, {jid: due for jid, due, _, _ in part})
        pipe.hset(keys.scheduled_messages, mapping={
            jid: tpl[level][0].replace(tpl[level][1].encode(), jid.encode())
            for jid, _, level, _ in part})
        for jid, due, level, _ in part:
            record = {**tpl[level][2], b"id": jid.encode(), b"execute_at": str(due).encode()}
            pipe.hset(keys.job(jid), mapping=record)  # type: ignore[arg-type]
        pipe.execute()


def _busy_ms(rng: random.Random, base_ms: int, window_s: float) -> int:
    """A random millisecond in the busy spans of the window."""
    period = BUSY_S + QUIET_S
    spans = max(1, int(window_s // period))
    span = rng.randrange(spans)
    return base_ms + int((span * period + rng.random() * BUSY_S) * 1000)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _command_calls(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def measure_scheduler_lag(
    system: Any, jobs_total: int, *, window_s: float = 24.0, burst: int = 5000,
    live: int = 5000, runners: list[str] | None = None, poll_s: float = 0.001,
    lead_s: float = 3.0, seed: int = 10, log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per-job lag (first seen in its list - due time) of ``jobs_total`` scheduled jobs."""
    jobs = system.jobs
    assert jobs is not None, "boundary only"
    kinds = runners or ["worker", "standalone"]
    rng = random.Random(seed)
    burst = min(burst, jobs_total // 4)
    live = min(live, jobs_total // 4)
    spread = jobs_total - burst - live
    r = system.redis
    system.reset()
    settings = jobs.settings.scheduler
    result: dict[str, Any] = {
        "jobs": jobs_total, "spread": spread, "burst": burst, "live": live,
        "window_s": window_s, "runners": ",".join(kinds), "schedulers": len(kinds),
        "interval_ms": settings.interval_ms, "batch_size": settings.batch_size,
    }
    with Runners(kinds, system.redis_url) as procs:
        # Due times, relative to a base decided once the schedulers run.
        fill_est_s = 2.0 + spread / 40_000
        base_ms = int((time.time() + fill_est_s + lead_s) * 1000)
        planned: list[tuple[str, int, str, str]] = []
        for _ in range(spread):
            planned.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                            _busy_ms(rng, base_ms, window_s), rng.choice(LEVELS), "spread"))
        burst_ms = base_ms + int(window_s * 500)
        for _ in range(burst):
            planned.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), burst_ms,
                            rng.choice(LEVELS), "burst"))
        planned.sort(key=lambda p: p[1])
        # The head goes through jobs.enqueue (its wake-up), the rest straight in.
        head, rest = planned[0], planned[1:]
        t0 = time.time()
        _fill(jobs, r, rest)
        fill_s = time.time() - t0
        head_due = datetime.fromtimestamp(head[1] / 1000, UTC)
        head_id = str(jobs.enqueue(NOOP, {"n": 0}, queue=QUEUE, priority=head[2],
                                   execute_at=head_due))
        planned[0] = (head_id, head[1], head[2], head[3])
        margin = base_ms / 1000 - time.time()
        result["fill_s"] = round(fill_s, 2)
        result["head_margin_s"] = round(margin, 2)
        if margin < 0.2:
            raise RuntimeError(f"filling {spread + burst:,} scheduled jobs took {fill_s:.1f} s: "
                               f"the window started {-margin:.2f} s before it was done")
        log(f"    filled {spread + burst:,} scheduled jobs in {fill_s:.1f} s; window of "
            f"{window_s:.0f} s starts in {margin:.1f} s")

        # The live producer: starts 1 s before the window, ends 1.5 s before its end.
        live_plan = sorted(
            (base_ms / 1000 - 1.0 + rng.random() * (window_s - 0.5),
             rng.randint(*LIVE_DELAY_MS), rng.choice(LEVELS)) for _ in range(live))
        fd, name = tempfile.mkstemp(prefix="bench-producer-", suffix=".json")
        os.close(fd)
        produced = Path(name)
        produced.write_text(json.dumps(live_plan))
        producer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scheduler_lag", str(produced)],
            env=worker_env(system.redis_url), cwd=ROOT, stdin=subprocess.DEVNULL,
            start_new_session=True)

        # Poll the list lengths until every job was seen (or a deadline).
        try:
            keys = lists()
            expected = jobs_total
            samples: list[tuple[float, float, tuple[int, ...]]] = []
            prev: tuple[int, ...] = (0,) * len(keys)
            conn = redis.Redis.from_url(system.redis_url)
            # The watch: the five LLENs packed once, sent and read on one raw connection.
            pool = redis.ConnectionPool.from_url(system.redis_url)
            try:
                raw: Any = pool.get_connection()  # type: ignore[call-arg]
            except TypeError:  # redis-py < 5.3 wants a command name
                raw = pool.get_connection("LLEN")
            packed = raw.pack_commands([("LLEN", k) for k in keys])
            calls0 = _command_calls(r)
            cpu_from = base_ms / 1000 - 0.5
            cpu0: list[float] = []
            watch0 = 0.0
            last_due_s = base_ms / 1000 + window_s + LIVE_DELAY_MS[1] / 1000
            deadline = last_due_s + 30
            prev_send = time.time()
            while True:
                t_send = time.time()
                raw.send_packed_command(packed)
                lens = tuple(int(raw.read_response()) for _ in keys)
                t_reply = time.time()
                if lens != prev:
                    samples.append((prev_send, t_reply, lens))
                    prev = lens
                prev_send = t_send
                if not cpu0 and t_reply >= cpu_from:  # the schedulers' CPU from here on
                    cpu0, cpu_from = [_cpu_s(pid) for pid in procs.pids()], time.time()
                    watch0 = time.process_time()
                if (sum(lens) >= expected and t_reply > last_due_s) or t_reply > deadline:
                    break
                time.sleep(poll_s)
            window_end = time.time()
            raw.disconnect()
            pool.disconnect()
            result["watcher_cpu_pct"] = (100 * (time.process_time() - watch0)
                                         / (window_end - cpu_from))
            calls1 = _command_calls(r)
            cpu1 = [_cpu_s(pid) for pid in procs.pids()]
            result["scheduler_cpu_pct"] = [round(100 * (b - a) / (window_end - cpu_from), 1)
                                           for a, b in zip(cpu0, cpu1, strict=True)]
            result["scheduler_cpu_pct_mean"] = (sum(result["scheduler_cpu_pct"])
                                                / max(1, len(result["scheduler_cpu_pct"])))
            if producer.wait(30) != 0:
                raise RuntimeError(f"the live producer failed (exit {producer.returncode})")
            live_out = json.loads(produced.read_text())
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(producer.pid, signal.SIGKILL)
            produced.unlink(missing_ok=True)
        result["live_late"] = live_out["late"]
        planned.extend((jid, due, "", kind) for jid, due, kind, _ in live_out["jobs"])
        stored_at = {jid: at for jid, _, _, at in live_out["jobs"]}
        result["scheduled_left"] = jobs.store.scheduled_count()
    # Schedulers stopped: read the lists whole, oldest first, and place each message.
    due_of = {jid: due for jid, due, _, _ in planned}
    kind_of = {jid: kind for jid, _, _, kind in planned}
    seen: dict[str, tuple[float, float]] = {}
    copies: Counter[str] = Counter()
    early = 0
    pushed_after = 0
    for li, key in enumerate(keys):
        total = conn.llen(key)
        counts = [s[2][li] for s in samples]
        msgs: list[bytes] = []
        for start in range(0, total, 10_000):
            msgs.extend(conn.lrange(key, start, min(total, start + 10_000) - 1))
        msgs.reverse()  # LPUSH: the oldest is last
        for pos, msg in enumerate(msgs):
            jid = json.loads(msg)["headers"]["id"]
            copies[jid] += 1
            at = bisect.bisect_right(counts, pos)  # first sample holding more than pos
            if at == len(samples):
                pushed_after += 1
                continue
            if jid in seen or jid not in due_of:
                continue
            seen[jid] = (samples[at][0], samples[at][1])
            if samples[at][1] * 1000 < due_of[jid]:
                early += 1
    conn.close()
    lags: dict[str, list[float]] = {"all": [], "spread": [], "burst": [], "live": []}
    lower: list[float] = []
    for jid, (low, high) in seen.items():
        lag = high * 1000 - due_of[jid]
        lags["all"].append(lag)
        lags[kind_of[jid]].append(lag)
        lower.append(max(0.0, low * 1000 - due_of[jid]))
    gaps = [high - low for low, high, _ in samples]
    result["burst_timeline"] = [  # (ms after the burst's due time, messages pushed so far)
        (round(high * 1000 - burst_ms, 1), sum(lens)) for _, high, lens in samples
        if -5 <= high * 1000 - burst_ms <= 300]
    worst = sorted(seen, key=lambda j: seen[j][1] * 1000 - due_of[j])[-8:]
    result["worst"] = [
        {"kind": kind_of[j], "lag_ms": round(seen[j][1] * 1000 - due_of[j], 1),
         "due_s": round(due_of[j] / 1000 - base_ms / 1000, 3),
         "enqueued_after_due_ms": round(stored_at[j] * 1000 - due_of[j], 1)
         if j in stored_at else None} for j in worst]
    result.update({
        "seen": len(seen), "duplicates": sum(c - 1 for c in copies.values() if c > 1),
        "missing": sum(1 for jid in due_of if jid not in copies),
        "unknown": sum(1 for jid in copies if jid not in due_of),
        "early": early, "pushed_after_polling": pushed_after,
        "lag_p50_ms": pct(lags["all"], 0.5), "lag_p95_ms": pct(lags["all"], 0.95),
        "lag_p99_ms": pct(lags["all"], 0.99), "lag_max_ms": max(lags["all"], default=0.0),
        "lag_p99_lower_ms": pct(lower, 0.99),
        "resolution_p50_ms": pct(gaps, 0.5) * 1000, "resolution_max_ms": max(gaps) * 1000,
        "polls_changed": len(samples),
        "seconds": round(window_end - base_ms / 1000, 1),
        "zrangebyscore_per_s": (calls1.get("zrangebyscore", 0)
                                 - calls0.get("zrangebyscore", 0))
                                / max(0.001, window_end - base_ms / 1000),
    })
    for kind in ("spread", "burst", "live"):
        vals = lags[kind]
        result[f"{kind}_p50_ms"] = pct(vals, 0.5)
        result[f"{kind}_p95_ms"] = pct(vals, 0.95)
        result[f"{kind}_p99_ms"] = pct(vals, 0.99)
        result[f"{kind}_max_ms"] = max(vals, default=float("nan"))
    system.reset()
    return result


if __name__ == "__main__":  # the live producer: reads its plan from, writes back to, a file
    _path = Path(sys.argv[1])
    _path.write_text(json.dumps(_produce(json.loads(_path.read_text()))))
