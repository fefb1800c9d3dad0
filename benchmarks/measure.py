"""The measurements, each against one system ("plain" or "boundary") on the private Redis.

Publishing happens in this process through each system's own API (``app.send_task`` for
plain Celery, ``jobs.enqueue`` / ``enqueue_many`` for boundary-celery); consuming is done
by real ``celery worker`` subprocesses (:mod:`benchmarks.workers`).

Drain throughput without timing worker start-up: N jobs are enqueued while no worker
runs, their lists are renamed to staging keys, the workers start, then the lists are
renamed back in one MULTI (for boundary-celery with the wake its producers send) and
the harness times until every list and the unacked hash are empty (the last ack
included).
"""

from __future__ import annotations

import importlib
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from benchmarks.apps.common import DONE_KEY, NOOP, PRIORITY_STEPS, SEP
from benchmarks.workers import Layout, WorkerGroup

QUEUE = "bench"
LEVELS = ["critical", "high", "normal", "low", "bulk"]
PHASES = [*LEVELS, "mixed"]


def list_key(step: int) -> str:
    return f"{QUEUE}{SEP}{step}" if step else QUEUE


NORMAL_STEP = PRIORITY_STEPS[2]
#: One list per level, most urgent first (the steps both apps use: Celery ints in pairs).
LIST_KEYS = [list_key(s) for s in PRIORITY_STEPS]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class System:
    """One system under test as the harness drives it."""

    def __init__(self, name: str, redis_url: str) -> None:
        self.name = name
        module = importlib.import_module(f"benchmarks.apps.{name}_app")
        # Plain Celery publishes through a fresh app: in this process boundary_app's
        # @boundary_job (a shared task) would otherwise shadow the plain "bench.noop".
        if name == "plain":
            self.app = module.make_app("bench_plain_publisher", current=False)
        else:
            self.app = module.app
        self.jobs = getattr(module, "jobs", None)
        self.redis = redis.Redis.from_url(redis_url)
        self.redis_url = redis_url
        self.unacked_key = "bench:unacked" if name == "boundary" else "unacked"

    # -- publishing -------------------------------------------------------------------

    def enqueue(self, rank: int, args: dict[str, Any]) -> None:
        if self.jobs is not None:
            self.jobs.enqueue(NOOP, args, priority=LEVELS[rank], queue=QUEUE)
        else:
            self.app.send_task(NOOP, kwargs=args, queue=QUEUE, routing_key=QUEUE,
                               priority=PRIORITY_STEPS[rank])

    def enqueue_bulk(self, ranks: list[int]) -> None:
        """Many jobs at once: ``enqueue_many`` vs kombu's ``Producer.batch()``."""
        if self.jobs is not None:
            from boundary_celery.shell.bulk import enqueue_many

            enqueue_many(self.jobs, [
                {"job_type": NOOP, "args": {"n": i}, "priority": LEVELS[r], "queue": QUEUE}
                for i, r in enumerate(ranks)
            ])
            return
        app = self.app
        with app.producer_or_acquire() as producer, producer.batch():
            for i, r in enumerate(ranks):
                app.send_task(NOOP, kwargs={"n": i}, queue=QUEUE, routing_key=QUEUE,
                              priority=PRIORITY_STEPS[r], producer=producer)

    # -- Redis state ------------------------------------------------------------------

    def reset(self) -> None:
        """Delete every key except kombu's bindings (publishers cache their declaration)."""
        doomed = [k for k in self.redis.scan_iter(count=5000)
                  if not k.startswith(b"_kombu.binding")]
        for i in range(0, len(doomed), 1000):
            self.redis.delete(*doomed[i:i + 1000])

    def used_memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])

    def key_bytes(self, samples: int = 200) -> int:
        """Bytes held by the queued messages and their job records (MEMORY USAGE).

        Lists are measured whole (SAMPLES 0); records from a sample, scaled up. Shared
        bookkeeping keys (queue set, stats hash, bindings) are left out.
        """
        r = self.redis
        total = sum(int(r.memory_usage(k, samples=0) or 0) for k in LIST_KEYS if r.exists(k))
        if self.jobs is not None:
            records = []
            for key in r.scan_iter(match=self.jobs.store.keys.job_prefix + "*", count=1000):
                records.append(key)
            picked = records[:samples]
            if picked:
                sizes = [int(r.memory_usage(k, samples=0) or 0) for k in picked]
                total += int(sum(sizes) / len(sizes) * len(records))
        return total

    def pending(self) -> int:
        """Messages still queued or delivered-but-unacked."""
        pipe = self.redis.pipeline(transaction=False)
        for k in LIST_KEYS:
            pipe.llen(k)
        pipe.hlen(self.unacked_key)
        return sum(pipe.execute())


# -- 3 and 4: enqueue latency, bulk rate, memory per queued job -------------------------


def measure_enqueue(system: System, samples: int, bulk_n: int) -> dict[str, Any]:
    """No worker runs: single-enqueue latency, bytes per queued job, bulk enqueue rate."""
    system.reset()
    for _ in range(20):  # warm connections, script cache, declarations
        system.enqueue(2, {"n": 0})
    system.reset()
    system.redis.execute_command("MEMORY", "PURGE")
    mem0 = system.used_memory()
    lat = []
    for i in range(samples):
        t0 = time.perf_counter()
        system.enqueue(i % 5, {"n": i})
        lat.append((time.perf_counter() - t0) * 1000)
    mem1 = system.used_memory()
    queued = system.pending()
    key_bytes = system.key_bytes()
    system.reset()
    t0 = time.perf_counter()
    system.enqueue_bulk([i % 5 for i in range(bulk_n)])
    bulk_s = time.perf_counter() - t0
    bulk_queued = system.pending()
    system.reset()
    return {
        "enqueue_p50_ms": pct(lat, 0.5),
        "enqueue_p99_ms": pct(lat, 0.99),
        "enqueue_mean_ms": statistics.fmean(lat),
        "enqueue_rate_single": samples / (sum(lat) / 1000),
        "bytes_per_job": key_bytes / samples,
        "used_memory_delta_per_job": (mem1 - mem0) / samples,
        "queued_ok": queued == samples,
        "bulk_rate": bulk_n / bulk_s,
        "bulk_ok": bulk_queued == bulk_n,
    }


# -- 1, 2 and 5: with workers of one layout --------------------------------------------


def stage(system: System, phase: str, n: int) -> dict[str, int]:
    """Enqueue ``phase``'s N jobs and rename their lists to staging keys."""
    ranks = [i % 5 for i in range(n)] if phase == "mixed" else [LEVELS.index(phase)] * n
    system.enqueue_bulk(ranks)
    staged: dict[str, int] = {}
    for step, key in zip(PRIORITY_STEPS, LIST_KEYS, strict=True):
        count = system.redis.llen(key)
        if count:
            target = f"stage:{phase}:{step}"
            system.redis.rename(key, target)
            staged[target] = step
    return staged


def drain(system: System, staged: dict[str, int], n: int, timeout: float) -> dict[str, float]:
    """Release the staged lists at once and time until all N jobs are acked."""
    pipe = system.redis.pipeline(transaction=True)
    for target, step in staged.items():
        pipe.rename(target, list_key(step))
    if system.jobs is not None:
        # A boundary producer announces a list going non-empty on the wake stream; the
        # RENAME does not, so the release says it too (idle workers wait on that stream).
        system.jobs.store.deliveries.wake(pipe)
    t0 = time.perf_counter()
    pipe.execute()
    first = None
    while True:
        left = system.pending()
        now = time.perf_counter()
        if first is None and left < n:
            first = now
        if left == 0:
            break
        if now - t0 > timeout:
            raise RuntimeError(f"{system.name}: drain of {n} jobs not done after {timeout} s "
                               f"({left} left)")
        time.sleep(0.01)
    elapsed = now - t0
    return {"jobs_per_s": n / elapsed, "seconds": elapsed,
            "first_ms": ((first or now) - t0) * 1000}


def e2e_latency(system: System, rank: int, samples: int) -> list[float]:
    """Enqueue -> job finished (task_postrun), one job at a time on idle workers."""
    out = []
    system.redis.delete(DONE_KEY)
    for i in range(samples):
        token = uuid.uuid4().hex
        time.sleep(0.005)
        t0 = time.perf_counter()
        system.enqueue(rank, {"n": i, "notify": token})
        got = system.redis.blpop([DONE_KEY], timeout=30)
        t1 = time.perf_counter()
        if got is None or got[1].decode() != token:
            raise RuntimeError(f"{system.name}: e2e job {i} at {LEVELS[rank]} not done: {got}")
        out.append((t1 - t0) * 1000)
    return out


class Monitor:
    """Count every command Redis executes (MONITOR), split top-level / inside Lua."""

    def __init__(self, redis_url: str) -> None:
        self.pool = redis.ConnectionPool.from_url(redis_url)
        self.conn: Any = self.pool.get_connection("MONITOR")
        self.stop_token = f"bench-monitor-stop-{uuid.uuid4().hex}"
        self.top: Counter[str] = Counter()
        self.lua: Counter[str] = Counter()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.conn.send_command("MONITOR")
        self.conn.read_response()
        while True:
            line = self.conn.read_response()
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            if self.stop_token in line:
                return
            if DONE_KEY in line:
                continue
            info_start = line.find("[")
            info_end = line.find("]", info_start)
            who = line[info_start + 1:info_end].split(" ", 1)[-1]
            rest = line[info_end + 2:]
            name = rest.split('"', 2)[1].lower() if rest.startswith('"') else "?"
            if name in ("monitor", "echo"):
                continue
            (self.lua if who == "lua" else self.top)[name] += 1

    def __enter__(self) -> Monitor:
        self.thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        redis.Redis(connection_pool=self.pool).echo(self.stop_token)
        self.thread.join(30)
        self.conn.disconnect()
        self.pool.disconnect()


def commands_per_job(system: System, jobs: int) -> dict[str, Any]:
    """Commands Redis ran per job, enqueue to ack, idle polling included (MONITOR)."""
    system.redis.delete(DONE_KEY)
    tokens = [uuid.uuid4().hex for _ in range(jobs)]
    with Monitor(system.redis_url) as mon:
        t0 = time.perf_counter()
        for i, token in enumerate(tokens):
            system.enqueue(i % 5, {"n": i, "notify": token})
        for _ in tokens:
            if system.redis.blpop([DONE_KEY], timeout=30) is None:
                raise RuntimeError(f"{system.name}: jobs of the commands phase not done")
        while system.pending() and time.perf_counter() - t0 < 30:
            time.sleep(0.01)
        mon_pending = system.pending()
    top = sum(mon.top.values()) - 0  # the harness's pending() polls are excluded below
    polls = mon.top.get("llen", 0) + mon.top.get("hlen", 0)
    top_jobs = top - polls
    return {
        "commands_per_job": top_jobs / jobs,
        "commands_per_job_incl_lua": (top_jobs + sum(mon.lua.values())) / jobs,
        "by_command": {k: round(v / jobs, 3) for k, v in sorted(mon.top.items())
                       if k not in ("llen", "hlen")},
        "lua_by_command": {k: round(v / jobs, 3) for k, v in sorted(mon.lua.items())},
        "left_pending": mon_pending,
    }


def measure_workers(system: System, layout: Layout, n: int, lat_samples: int,
                    cmd_jobs: int, timeout: float) -> dict[str, Any]:
    """Drain per level and mixed, idle e2e latency per level, commands per job."""
    system.reset()
    staged = {phase: stage(system, phase, n) for phase in PHASES}
    result: dict[str, Any] = {"drain": {}, "e2e": {}}
    with WorkerGroup(system.name, layout, system.redis_url, [QUEUE]):
        e2e_latency(system, 2, 10)  # warm up the worker(s)
        for phase in PHASES:
            result["drain"][phase] = drain(system, staged[phase], n, timeout)
        for rank, level in enumerate(LEVELS):
            lat = e2e_latency(system, rank, lat_samples)
            result["e2e"][level] = {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                                    "max_ms": max(lat)}
        if cmd_jobs:
            result["commands"] = commands_per_job(system, cmd_jobs)
    system.reset()
    return result


# -- 6: the scheduler (boundary-celery only) ---------------------------------------------


def _fill_scheduled(system: System, count: int,
                    due_ms: Callable[[int], int]) -> tuple[bytes, str]:
    """Put ``count`` scheduled jobs straight into the sorted set (and their records)."""
    jobs = system.jobs
    assert jobs is not None
    keys = jobs.store.keys
    r = system.redis
    template_id = jobs.enqueue(NOOP, {"n": 0}, queue=QUEUE,
                               execute_at=datetime.now(UTC) + timedelta(hours=1))
    payload = r.hget(keys.scheduled_messages, template_id)
    record = r.hgetall(keys.job(template_id))
    assert payload is not None, "the scheduled message was not written"
    r.delete(keys.scheduled, keys.scheduled_messages, keys.job(template_id))
    chunk = 5000
    for start in range(0, count, chunk):
        ids = [f"sched-{i:07d}" for i in range(start, min(count, start + chunk))]
        pipe = r.pipeline(transaction=False)
        pipe.zadd(keys.scheduled, {jid: due_ms(start + k) for k, jid in enumerate(ids)})
        pipe.hset(keys.scheduled_messages, mapping=dict.fromkeys(ids, payload))
        for jid in ids:
            pipe.hset(keys.job(jid), mapping={**record, b"id": jid.encode()})  # type: ignore[dict-item]
        pipe.execute()
    return payload, template_id


def _constant(value: int) -> Callable[[int], int]:
    return lambda _i: value


def measure_scheduler(system: System, sizes: list[int]) -> dict[str, Any]:
    """Due jobs moved per second: ``size`` scheduled jobs, all due, moved by
    ``jobs.process_scheduled_jobs()`` in this process (the lag, with the schedulers as
    shipped, is :func:`benchmarks.scheduler_lag.measure_scheduler_lag`)."""
    jobs = system.jobs
    assert jobs is not None
    out: dict[str, Any] = {}
    for size in sizes:
        system.reset()
        now_ms = int(time.time() * 1000)
        _fill_scheduled(system, size, _constant(now_ms - 1000))
        jobs.store.move_due(datetime.now(UTC) - timedelta(days=1), 1)  # loads the script
        system.redis.config_resetstat()
        t0 = time.perf_counter()
        moved = jobs.process_scheduled_jobs()
        rate = moved / (time.perf_counter() - t0)
        # Time Redis spent in the move_due scripts (the only scripts run meanwhile): the
        # cost per job without the noise of this process' scheduling.
        script_us = system.redis.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
        ok = moved == size and system.redis.llen(list_key(NORMAL_STEP)) == size
        out[str(size)] = {"due_per_s": rate, "moved_ok": ok,
                          "redis_us_per_job": script_us / max(1, moved),
                          "batch_size": jobs.settings.scheduler.batch_size}
    system.reset()
    return out


@contextmanager
def timed(label: str, log: Callable[[str], None]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    log(f"  {label}: {time.perf_counter() - t0:.1f} s")
