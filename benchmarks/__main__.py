"""``python -m benchmarks``: boundary-celery vs plain Celery, interleaved, on a private Redis.

Per repeat, the two systems alternate (A B, then B A on the next repeat, ...) in every
measurement, so machine drift hits both; ratios are computed per repeat.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import measure, report, scheduler_lag
from benchmarks.workers import Layout
from boundary_celery.redis_server import RedisServer

DEFAULT_LAYOUTS = "1x1,1x2,2x2"
PARTS = ("enqueue", "workers", "scheduler")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--n", type=int, default=2000,
                   help="jobs per drain phase (each level and the mixed load); default 2000")
    p.add_argument("--repeats", type=int, default=3, help="repeats of everything; default 3")
    p.add_argument("--layouts", default=DEFAULT_LAYOUTS,
                   help="worker layouts, PROCESSESxCONCURRENCY[:pool], comma separated; "
                        f"default {DEFAULT_LAYOUTS}")
    p.add_argument("--latency-samples", type=int, default=150,
                   help="idle end-to-end samples per priority level; default 150")
    p.add_argument("--enqueue-samples", type=int, default=2000,
                   help="single enqueues timed (also the memory sample); default 2000")
    p.add_argument("--bulk-n", type=int, default=20000, help="jobs per bulk enqueue; default 20000")
    p.add_argument("--command-jobs", type=int, default=300,
                   help="jobs traced with MONITOR for commands per job; default 300")
    p.add_argument("--scheduler-sizes", default="10000,100000",
                   help="scheduled-set sizes for the scheduler's move rate")
    p.add_argument("--lag-jobs", type=int, default=100_000,
                   help="scheduler lag: jobs scheduled over the window; default 100000")
    p.add_argument("--lag-window-s", type=float, default=24.0,
                   help="scheduler lag: seconds over which the jobs fall due; default 24")
    p.add_argument("--lag-burst", type=int, default=5000,
                   help="scheduler lag: jobs due at one and the same ms; default 5000")
    p.add_argument("--lag-live", type=int, default=5000,
                   help="scheduler lag: jobs scheduled while the schedulers run; default 5000")
    p.add_argument("--lag-runners", default="worker,standalone",
                   help="scheduler lag: the scheduler processes, comma separated, each "
                        "'worker' (embedded in a celery worker) or 'standalone' (celery "
                        "boundary scheduler); default worker,standalone")
    p.add_argument("--no-scheduler", action="store_true",
                   help="skip the scheduler measurements (same as leaving out --only scheduler)")
    p.add_argument("--only", default=",".join(PARTS),
                   help=f"run only these parts, comma separated, among {', '.join(PARTS)} "
                        "(e.g. --only scheduler); default all")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-events", action="store_true",
                   help="turn Celery task events off in both systems (default: on, as "
                        "boundary_celery.install() configures them)")
    p.add_argument("--quick", action="store_true",
                   help="tiny run proving the harness works (1 repeat, 1x1, small N)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"output directory; default {RESULTS}")
    p.add_argument("--timeout", type=float, default=300.0, help="per drain phase, seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.layouts = 200, 1, "1x1"
        args.latency_samples, args.enqueue_samples, args.bulk_n = 20, 200, 1000
        args.command_jobs, args.scheduler_sizes = 50, "2000"
        args.lag_jobs, args.lag_window_s, args.lag_burst, args.lag_live = 2000, 4.0, 200, 200
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if not parts or parts - set(PARTS):
        p.error(f"--only takes parts among {', '.join(PARTS)}: {args.only!r}")
    if args.no_scheduler:
        parts.discard("scheduler")
    args.parts = parts
    return args


def loadavg() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def git_state() -> dict[str, Any]:
    """The commit measured and whether the working tree had local changes."""
    import subprocess

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=RESULTS.parent.parent, capture_output=True,
                                  text=True, timeout=10).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if not line[3:].startswith(("benchmarks/", "tests/bench/"))]
    import hashlib

    diff = git("diff", "HEAD", "--", "boundary_celery")
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "dirty_files": dirty,
            "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12]}


def log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layouts = ([Layout.parse(s) for s in args.layouts.split(",") if s.strip()]
               if "workers" in args.parts else [])
    sizes = [int(s) for s in args.scheduler_sizes.split(",") if s.strip()]
    started = datetime.now(UTC)
    meta: dict[str, Any] = {
        "command": "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"),
        "n": args.n, "repeats": args.repeats,
        "layouts": [lay.name for lay in layouts],
        "layout_text": {lay.name: f"{lay.processes} worker process(es) x -c {lay.concurrency}, "
                                  f"-P {lay.pool}, prefetch 1, acks_late" for lay in layouts},
        "cpus": os.cpu_count(), "load_before": loadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
        "order": "A B / B A alternating per repeat",
        "parts": sorted(args.parts),
        "git": git_state(),
    }
    # SIGTERM -> KeyboardInterrupt so the finally blocks stop workers and Redis.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    os.environ["BENCH_EVENTS"] = "0" if args.no_events else "1"
    meta["task_events"] = not args.no_events
    runs: list[dict[str, Any]] = []
    server = RedisServer(workdir_prefix="boundary-bench-redis-")
    try:
        server.start()
        os.environ["BENCH_REDIS_URL"] = server.url
        meta["redis_version"] = server.version()
        log(f"redis-server on port {server.port} ({meta['redis_version']}); load {loadavg()}")
        systems = {name: measure.System(name, server.url) for name in ("plain", "boundary")}
        for rep in range(args.repeats):
            order = ["plain", "boundary"] if rep % 2 == 0 else ["boundary", "plain"]
            log(f"repeat {rep + 1}/{args.repeats}: order {' '.join(order)}; load {loadavg()}")
            for name in order if "enqueue" in args.parts else []:
                with measure.timed(f"{name} enqueue/memory", log):
                    data = measure.measure_enqueue(systems[name], args.enqueue_samples,
                                                   args.bulk_n)
                runs.append({"repeat": rep, "system": name, "kind": "enqueue", "data": data})
                log(f"    p50 {data['enqueue_p50_ms']:.3f} ms p99 {data['enqueue_p99_ms']:.3f} ms"
                    f" bulk {data['bulk_rate']:,.0f}/s {data['bytes_per_job']:,.0f} B/job")
            for li, layout in enumerate(layouts):
                for name in order:
                    with measure.timed(f"{name} workers {layout.name}", log):
                        data = measure.measure_workers(
                            systems[name], layout, args.n, args.latency_samples,
                            args.command_jobs if li == 0 else 0, args.timeout)
                    runs.append({"repeat": rep, "system": name, "kind": "workers",
                                 "layout": layout.name, "data": data})
                    drains = " ".join(f"{p[:4]} {v['jobs_per_s']:,.0f}"
                                      for p, v in data["drain"].items())
                    log(f"    drain/s {drains}; e2e critical p50 "
                        f"{data['e2e']['critical']['p50_ms']:.2f} ms")
            if "scheduler" in args.parts and sizes:
                with measure.timed("boundary scheduler move rate", log):
                    data = measure.measure_scheduler(systems["boundary"], sizes)
                runs.append({"repeat": rep, "system": "boundary", "kind": "scheduler",
                             "data": data})
                log("    " + "; ".join(f"{k}: {v['due_per_s']:,.0f}/s" for k, v in data.items()))
            if "scheduler" in args.parts and args.lag_jobs:
                with measure.timed(f"boundary scheduler lag ({args.lag_runners})", log):
                    data = scheduler_lag.measure_scheduler_lag(
                        systems["boundary"], args.lag_jobs, window_s=args.lag_window_s,
                        burst=args.lag_burst, live=args.lag_live,
                        runners=[r.strip() for r in args.lag_runners.split(",") if r.strip()],
                        log=log)
                runs.append({"repeat": rep, "system": "boundary", "kind": "scheduler_lag",
                             "data": data})
                log(f"    lag p50 {data['lag_p50_ms']:.1f} ms p95 {data['lag_p95_ms']:.1f} ms "
                    f"p99 {data['lag_p99_ms']:.1f} ms max {data['lag_max_ms']:.1f} ms; "
                    f"duplicates {data['duplicates']}, missing {data['missing']}")
    finally:
        server.stop()
    meta["load_after"] = loadavg()
    meta["git_end"] = git_state()
    meta["code_changed_during_run"] = meta["git_end"] != meta["git"]
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    summary = report.summarize(runs, [lay.name for lay in layouts])
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    latest = "latest"
    if args.parts != set(PARTS):  # a partial run keeps latest.* for the full one
        latest = "latest-" + "-".join(p for p in PARTS if p in args.parts)
        stamp += latest.removeprefix("latest")
    paths = report.write(args.out, stamp, runs, summary, meta,
                         with_plot=not args.no_plot and bool(layouts), latest=latest)
    log("\n" + report.markdown(summary, meta))
    for kind, path in paths.items():
        log(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
