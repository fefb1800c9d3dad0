"""``python -m benchmarks.replication``: what ``[redis] wait_replicas`` costs and what it
buys, on a private Sentinel group (master, 1 replica, 3 sentinels on loopback).

- **Cost**: single ``jobs.enqueue`` latency (p50/p99) and ``enqueue_many`` rate with
  ``wait_replicas`` 0 and 1, interleaved in blocks so machine drift hits both.
- **What it buys**: a producer enqueues as fast as it can; the replicas are cut off
  (SIGSTOP, as over a partition) for ``--lag-s``, then the master is SIGKILLed and the
  replicas resumed; after the failover every enqueue that returned is looked up on the
  new master. Lost = acknowledged jobs whose record is not there. ``--trials`` times per
  setting. (On loopback a replica is never measurably behind without the cut: a plain
  SIGKILL of the master, or a 0.5 s cut, lost nothing in either setting; what the killed
  master had already written to its replica sockets still arrives.)

Prints a table; writes ``benchmarks/results/replication-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from rich.console import Console
from rich.table import Table

import boundary_celery
from benchmarks.measure import pct
from boundary_celery.redis_sentinel import MASTER_NAME, SentinelGroup
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell.bulk import enqueue_many

RESULTS = Path(__file__).resolve().parent / "results"
QUEUE = "replication"


def _jobs(group: SentinelGroup, wait: int) -> Any:
    app = Celery(f"replication-{wait}")
    return boundary_celery.install(app, BoundarySettings(
        redis={"url": group.url, "sentinel_master": MASTER_NAME, "wait_replicas": wait},
        store={"key_prefix": "repl"}))


def measure_cost(samples: int, bulk: int, block: int = 200) -> dict[str, Any]:
    """Enqueue latency and bulk rate, wait_replicas 0 vs 1, on one group."""
    with SentinelGroup(replicas=2) as group:
        systems = {wait: _jobs(group, wait) for wait in (0, 1)}
        latency: dict[int, list[float]] = {0: [], 1: []}
        for start in range(0, samples, block):
            order = (0, 1) if (start // block) % 2 == 0 else (1, 0)
            for wait in order:
                for i in range(block):
                    t0 = time.perf_counter()
                    systems[wait].enqueue("repl.noop", {"i": start + i}, queue=QUEUE)
                    latency[wait].append((time.perf_counter() - t0) * 1000)
        rates: dict[int, list[float]] = {0: [], 1: []}
        for _ in range(3):
            for wait in (0, 1):
                items = [{"job_type": "repl.noop", "args": {"i": i}, "queue": QUEUE}
                         for i in range(bulk)]
                t0 = time.perf_counter()
                enqueue_many(systems[wait], items)
                rates[wait].append(bulk / (time.perf_counter() - t0))
    return {str(wait): {"enqueue_p50_ms": pct(latency[wait], 0.5),
                        "enqueue_p99_ms": pct(latency[wait], 0.99),
                        "bulk_rate": statistics.median(rates[wait])} for wait in (0, 1)}


def measure_loss(wait: int, lag_s: float) -> dict[str, Any]:
    """One failover under a producer, the replicas cut off (SIGSTOP) for ``lag_s`` before
    the master is killed: acknowledged enqueues missing on the new master."""
    with SentinelGroup(replicas=2) as group:
        jobs = _jobs(group, wait)
        acknowledged: list[str] = []
        refused = 0
        stop = threading.Event()

        def produce() -> None:
            nonlocal refused
            i = 0
            while not stop.is_set() and i < 200_000:
                try:
                    acknowledged.append(str(jobs.enqueue("repl.noop", {"i": i}, queue=QUEUE)))
                except Exception:  # the master is gone (or WAIT timed out)
                    refused += 1
                    time.sleep(0.01)
                i += 1

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        time.sleep(1.0)
        group.signal_replicas(signal.SIGSTOP)  # cut off: the replicas fall behind
        time.sleep(lag_s)
        old = group.kill_master()
        killed_at = len(acknowledged)
        group.signal_replicas(signal.SIGCONT)
        group.wait_failover(old)
        time.sleep(0.5)
        stop.set()
        producer.join(30)
        client = group.current_master().client(decode_responses=True)
        try:
            pipe = client.pipeline(transaction=False)
            for job_id in acknowledged:
                pipe.exists(f"repl:job:{job_id}")
            lost = sum(1 for found in pipe.execute() if not found)
        finally:
            client.close()
    return {"acknowledged": len(acknowledged), "acknowledged_before_kill": killed_at,
            "refused": refused, "lost": lost}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replication",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="single enqueues timed")
    parser.add_argument("--bulk", type=int, default=5000, help="jobs per enqueue_many")
    parser.add_argument("--trials", type=int, default=3, help="failovers per setting")
    parser.add_argument("--lag-s", type=float, default=3.0,
                        help="how long the replicas are cut off before the master dies")
    args = parser.parse_args(argv)
    console = Console()
    with console.status("enqueue cost, wait_replicas 0 vs 1"):
        cost = measure_cost(args.samples, args.bulk)
    loss: dict[str, list[dict[str, Any]]] = {"0": [], "1": []}
    for trial in range(args.trials):
        for wait in (0, 1):
            with console.status(f"failover {trial + 1}/{args.trials}, wait_replicas {wait}"):
                loss[str(wait)].append(measure_loss(wait, args.lag_s))
    table = Table(title="wait_replicas: cost, and loss on a failover after the replicas "
                        f"fell {args.lag_s:g} s behind (master + 2 replicas)")
    for column in ("wait_replicas", "enqueue p50 ms", "enqueue p99 ms", "enqueue_many jobs/s",
                   "lost per failover (acknowledged)"):
        table.add_column(column, justify="right")
    for wait in ("0", "1"):
        row = cost[wait]
        table.add_row(wait, f"{row['enqueue_p50_ms']:.3f}", f"{row['enqueue_p99_ms']:.3f}",
                      f"{row['bulk_rate']:,.0f}",
                      ", ".join(f"{t['lost']} ({t['acknowledged']:,})" for t in loss[wait]))
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"replication-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"args": vars(args), "cost": cost, "loss": loss}, indent=2))
    console.print(f"json: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
