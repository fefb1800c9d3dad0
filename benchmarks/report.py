"""Aggregate repeated runs (median and range, per-run A/B ratios) into markdown, JSON, PNG."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.measure import LEVELS, PHASES

SYSTEMS = ("boundary", "plain")


def agg(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "values": vals}


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def series(runs: list[dict[str, Any]], kind: str, path: tuple[str, ...],
           layout: str | None = None) -> dict[str, Any]:
    """Per system: median/range over repeats; ratio boundary/plain per repeat."""
    by: dict[str, dict[int, float]] = {s: {} for s in SYSTEMS}
    for run in runs:
        if run["kind"] != kind or (layout is not None and run.get("layout") != layout):
            continue
        value = _get(run["data"], path)
        if isinstance(value, (int, float)):
            by[run["system"]][run["repeat"]] = float(value)
    ratios = [by["boundary"][r] / by["plain"][r] for r in by["boundary"]
              if r in by["plain"] and by["plain"][r]]
    return {"boundary": agg(list(by["boundary"].values())),
            "plain": agg(list(by["plain"].values())), "ratio": agg(ratios)}


def summarize(runs: list[dict[str, Any]], layouts: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"layouts": {}, "enqueue": {}, "commands": {}, "scheduler": {},
                           "scheduler_lag": {}}
    for layout in layouts:
        lay: dict[str, Any] = {"drain": {}, "e2e": {}}
        for phase in PHASES:
            lay["drain"][phase] = series(runs, "workers", ("drain", phase, "jobs_per_s"), layout)
        for level in LEVELS:
            lay["e2e"][level] = {
                "p50_ms": series(runs, "workers", ("e2e", level, "p50_ms"), layout),
                "p99_ms": series(runs, "workers", ("e2e", level, "p99_ms"), layout),
            }
        out["layouts"][layout] = lay
    for metric in ("enqueue_p50_ms", "enqueue_p99_ms", "enqueue_rate_single", "bulk_rate",
                   "bytes_per_job", "used_memory_delta_per_job"):
        out["enqueue"][metric] = series(runs, "enqueue", (metric,))
    for metric in ("commands_per_job", "commands_per_job_incl_lua"):
        if layouts:
            out["commands"][metric] = series(runs, "workers", ("commands", metric), layouts[0])
    sched: dict[str, Any] = {}
    for run in runs:
        if run["kind"] == "scheduler":
            for size, vals in run["data"].items():
                for metric, value in vals.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        sched.setdefault(size, {}).setdefault(metric, []).append(value)
    out["scheduler"] = {size: {m: agg(v) for m, v in metrics.items()}
                        for size, metrics in sched.items()}
    lag: dict[str, list[float]] = {}
    for run in runs:
        if run["kind"] == "scheduler_lag":
            out["scheduler_lag_setup"] = {k: v for k, v in run["data"].items()
                                          if isinstance(v, (str, int, float)) and k in LAG_SETUP}
            for metric, value in run["data"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    lag.setdefault(metric, []).append(value)
    out["scheduler_lag"] = {m: agg(v) for m, v in lag.items()}
    return out


#: What describes a scheduler-lag run (the same in every repeat).
LAG_SETUP = ("jobs", "spread", "burst", "live", "window_s", "runners", "schedulers",
             "interval_ms", "batch_size")


def fmt(a: dict[str, Any], digits: int = 0) -> str:
    med = a["median"]
    if med is None or math.isnan(med):
        return "-"
    def f(v: float) -> str:
        return (f"{v:,.{digits}f}")
    if len(a["values"]) > 1:
        return f"{f(med)} ({f(a['min'])}-{f(a['max'])})"
    return f(med)


def targets(summary: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met?, figures) for each target of the issue."""
    rows: list[tuple[str, bool | None, str]] = []

    def med(a: dict[str, Any]) -> float:
        return float(a["median"])

    if summary["layouts"]:
        worst = min(((med(s["ratio"]), lay, phase)
                     for lay, d in summary["layouts"].items()
                     for phase, s in d["drain"].items()
                     if not math.isnan(med(s["ratio"]))), default=(float("nan"), "-", "-"))
        rows.append(("drain >= 1.0x plain Celery in every layout", worst[0] >= 1.0,
                     f"lowest median ratio {worst[0]:.2f}x ({worst[1]}, {worst[2]})"))
    enq = summary["enqueue"]
    if enq and enq["enqueue_p50_ms"]["boundary"]["values"]:
        rows += _enqueue_targets(enq)
    for lay, d in summary["layouts"].items():
        p50 = med(d["e2e"]["critical"]["p50_ms"]["boundary"])
        p99 = med(d["e2e"]["critical"]["p99_ms"]["boundary"])
        rows.append((f"idle e2e critical p50 <= 2 ms, p99 <= 5 ms ({lay})",
                     p50 <= 2.0 and p99 <= 5.0, f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"))
    if enq and enq["bytes_per_job"]["boundary"]["values"]:
        b = med(enq["bytes_per_job"]["boundary"])
        rows.append(("<= 1,500 bytes per queued job incl. record", b <= 1500,
                     f"{b:,.0f} bytes (plain {med(enq['bytes_per_job']['plain']):,.0f})"))
    if summary["commands"]:
        cmd = summary["commands"]["commands_per_job"]
        cb, cp = med(cmd["boundary"]), med(cmd["plain"])
        rows.append(("commands per job <= plain + 4",
                     cb <= cp + 4 if not math.isnan(cb) else None,
                     f"{cb:.2f} vs plain {cp:.2f} (round-trip commands; incl. Lua: "
                     f"{med(summary['commands']['commands_per_job_incl_lua']['boundary']):.2f}"
                     f" vs {med(summary['commands']['commands_per_job_incl_lua']['plain']):.2f})"))
    sched = summary["scheduler"]
    if sched:
        big = max(sched, key=int)
        rate = med(sched[big]["due_per_s"])
        rows.append((f"scheduler >= 10,000 due jobs/s ({int(big):,} scheduled)",
                     rate >= 10_000, f"{rate:,.0f} jobs/s"))
    lag = summary.get("scheduler_lag") or {}
    if lag:
        setup = summary.get("scheduler_lag_setup", {})
        p99 = lag["lag_p99_ms"]
        rows.append((f"scheduler lag p99 <= 100 ms ({setup.get('jobs', 0):,} jobs, "
                     f"{setup.get('schedulers', '?')} schedulers, shipped defaults)",
                     med(p99) <= 100,
                     f"p99 {med(p99):.1f} ms (repeats {_range(p99)}), max "
                     f"{med(lag['lag_max_ms']):.1f} ms"))
        dup, miss = lag["duplicates"], lag["missing"]
        rows.append(("every due job published exactly once (any number of schedulers)",
                     dup["max"] == 0 and miss["max"] == 0,
                     f"duplicates {dup['max']:.0f}, missing {miss['max']:.0f} (worst repeat)"))
    return rows


def _range(a: dict[str, Any]) -> str:
    return f"{a['min']:.1f}-{a['max']:.1f}" if a["values"] else "-"


def _enqueue_targets(enq: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    def med(a: dict[str, Any]) -> float:
        return float(a["median"])

    rows: list[tuple[str, bool | None, str]] = []
    rows.append(("enqueue p50 <= 0.5 ms", med(enq["enqueue_p50_ms"]["boundary"]) <= 0.5,
                 f"{med(enq['enqueue_p50_ms']['boundary']):.3f} ms (plain "
                 f"{med(enq['enqueue_p50_ms']['plain']):.3f} ms)"))
    rows.append(("enqueue p99 <= 2 ms", med(enq["enqueue_p99_ms"]["boundary"]) <= 2.0,
                 f"{med(enq['enqueue_p99_ms']['boundary']):.3f} ms (plain "
                 f"{med(enq['enqueue_p99_ms']['plain']):.3f} ms)"))
    rows.append(("enqueue_many >= 20,000 jobs/s", med(enq["bulk_rate"]["boundary"]) >= 20_000,
                 f"{med(enq['bulk_rate']['boundary']):,.0f} jobs/s (plain Producer.batch "
                 f"{med(enq['bulk_rate']['plain']):,.0f})"))
    return rows


def _git(meta: dict[str, Any]) -> str:
    state = meta.get("git") or {}
    dirty = state.get("dirty_files") or []
    extra = f" + local changes to {', '.join(dirty)}" if dirty else ""
    return f"commit {state.get('commit') or '?'}{extra}"


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# boundary-celery vs plain Celery ({meta['finished']})"
        + (f", parts: {', '.join(meta['parts'])}"
           if meta.get("parts") and len(meta["parts"]) < 3 else ""),
        "",
        f"`{meta['command']}` at {_git(meta)} - {meta['repeats']} repeat(s), "
        f"N = {meta['n']:,} jobs per drain phase, Redis {meta['redis_version']} "
        "(private, same broker for both), "
        f"{meta['cpus']} CPUs, load average before {meta['load_before']}, after "
        f"{meta['load_after']}. Celery task events "
        f"{'on' if meta.get('task_events', True) else 'off'} in both. Systems interleaved "
        f"run by run ({meta['order']}). Cells: median "
        "(min-max over repeats); ratio = boundary / plain, computed per repeat from "
        "side-by-side runs (throughput: higher is better; latency, bytes: lower is better).",
        "",
    ]
    if meta.get("code_changed_during_run"):
        lines += [f"**Warning: the measured code changed during the run** (end: "
                  f"{_git({'git': meta.get('git_end')})}); repeats may differ in version.", ""]
    for layout, d in summary["layouts"].items():
        lines += [
            f"## Layout {layout} ({meta['layout_text'][layout]})",
            "",
            "| Priority | boundary jobs/s | plain jobs/s | ratio | boundary p50 ms | "
            "plain p50 ms | ratio | boundary p99 ms | plain p99 ms | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for phase in PHASES:
            dr = d["drain"][phase]
            row = [phase, fmt(dr["boundary"]), fmt(dr["plain"]), fmt(dr["ratio"], 2)]
            if phase in d["e2e"]:
                e = d["e2e"][phase]
                row += [fmt(e["p50_ms"]["boundary"], 2), fmt(e["p50_ms"]["plain"], 2),
                        fmt(e["p50_ms"]["ratio"], 2), fmt(e["p99_ms"]["boundary"], 2),
                        fmt(e["p99_ms"]["plain"], 2), fmt(e["p99_ms"]["ratio"], 2)]
            else:
                row += ["-"] * 6
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    enq = summary["enqueue"]
    cmd = summary["commands"]
    rows = [
        ("enqueue one job p50 (ms)", enq["enqueue_p50_ms"], 3),
        ("enqueue one job p99 (ms)", enq["enqueue_p99_ms"], 3),
        ("enqueue one at a time (jobs/s)", enq["enqueue_rate_single"], 0),
        ("bulk enqueue (jobs/s): enqueue_many vs Producer.batch()", enq["bulk_rate"], 0),
        ("Redis bytes per queued job, MEMORY USAGE (message + record)",
         enq["bytes_per_job"], 0),
        ("Redis bytes per queued job, INFO used_memory delta", enq["used_memory_delta_per_job"],
         0),
    ] if enq["enqueue_p50_ms"]["boundary"]["values"] else []
    if cmd:
        rows += [
            (f"Redis commands per job, round trips ({meta['layouts'][0]})",
             cmd["commands_per_job"], 2),
            (f"Redis commands per job incl. inside Lua ({meta['layouts'][0]})",
             cmd["commands_per_job_incl_lua"], 2),
        ]
    if rows:
        lines += [
            "## Enqueue, memory, Redis commands",
            "",
            "| Metric | boundary | plain Celery | ratio |",
            "|---|---:|---:|---:|",
        ]
        for label, a, digits in rows:
            lines.append(f"| {label} | {fmt(a['boundary'], digits)} | "
                         f"{fmt(a['plain'], digits)} | {fmt(a['ratio'], 2)} |")
        lines.append("")
    if summary["scheduler"]:
        lines += [
            "## Scheduler move rate (boundary-celery only; plain Celery has no scheduled set)",
            "",
            "| Scheduled jobs, all due | due jobs published/s (`process_scheduled_jobs`) | "
            "Redis time per job in move_due (us) | batch size |",
            "|---:|---:|---:|---:|",
        ]
        for size, m in sorted(summary["scheduler"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {int(size):,} | {fmt(m['due_per_s'])} | "
                         f"{fmt(m.get('redis_us_per_job', agg([])), 2)} | "
                         f"{fmt(m.get('batch_size', agg([])))} |")
        lines.append("")
    if summary.get("scheduler_lag"):
        lines += lag_markdown(summary["scheduler_lag"], summary.get("scheduler_lag_setup", {}))
    lines += ["## Targets", "", "| Target | Met | Measured (median) |", "|---|---|---|"]
    for name, met, figures in targets(summary):
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {mark} | {figures} |")
    lines.append("")
    return "\n".join(lines)


def lag_markdown(lag: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    """The scheduler-lag section: lag per kind of job, duplicates, cost."""
    jobs = setup.get("jobs", 0)
    lines = [
        f"## Scheduler lag (boundary-celery only): {jobs:,} jobs due over "
        f"{setup.get('window_s', 0):.0f} s, {setup.get('schedulers', '?')} schedulers "
        f"({setup.get('runners', '?')}), shipped defaults (interval "
        f"{setup.get('interval_ms', 0):,} ms, batch {setup.get('batch_size', 0):,})",
        "",
        "Lag = first seen in its queue list (LLEN polled every ~1 ms, no consumer) - due "
        "time: an upper bound by at most the poll resolution.",
        "",
        "| Jobs | count | lag p50 (ms) | lag p95 (ms) | lag p99 (ms) | lag max (ms) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| all | {jobs:,} | {fmt(lag['lag_p50_ms'], 1)} | {fmt(lag['lag_p95_ms'], 1)} | "
        f"{fmt(lag['lag_p99_ms'], 1)} | {fmt(lag['lag_max_ms'], 1)} |",
    ]
    for kind, label in (("spread", "spread (random ms of 2 s busy / 1 s quiet spans)"),
                        ("burst", "burst (all due at one ms)"),
                        ("live", "live (scheduled during the run, due 50-1,500 ms later)")):
        if f"{kind}_p50_ms" in lag:
            lines.append(
                f"| {label} | {setup.get(kind, 0):,} | {fmt(lag[f'{kind}_p50_ms'], 1)} | "
                f"{fmt(lag[f'{kind}_p95_ms'], 1)} | {fmt(lag[f'{kind}_p99_ms'], 1)} | "
                f"{fmt(lag[f'{kind}_max_ms'], 1)} |")
    lines += [
        "",
        "| Check | value |",
        "|---|---:|",
        f"| duplicates (a job published twice) | {fmt(lag['duplicates'])} |",
        f"| missing (never published) | {fmt(lag['missing'])} |",
        f"| published before due | {fmt(lag['early'])} |",
        f"| poll resolution p50 (ms) | {fmt(lag['resolution_p50_ms'], 2)} |",
        f"| ZRANGEBYSCORE calls/s in the window (move_due passes, all schedulers) | "
        f"{fmt(lag['zrangebyscore_per_s'])} |",
        f"| CPU of each scheduler process in the window (%) | "
        f"{fmt(lag['scheduler_cpu_pct_mean'], 1)} |",
        f"| CPU of the harness' watch in the window (%) | "
        f"{fmt(lag.get('watcher_cpu_pct', agg([])), 1)} |",
        "",
    ]
    return lines


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = list(summary["layouts"])
    fig, axes = plt.subplots(2, len(layouts), figsize=(5 * len(layouts), 8), squeeze=False)
    width = 0.38
    for col, layout in enumerate(layouts):
        d = summary["layouts"][layout]
        ax = axes[0][col]
        xs = range(len(PHASES))
        for k, system in enumerate(SYSTEMS):
            meds = [d["drain"][p][system]["median"] for p in PHASES]
            errs = [[m - d["drain"][p][system]["min"] for p, m in zip(PHASES, meds, strict=True)],
                    [d["drain"][p][system]["max"] - m for p, m in zip(PHASES, meds, strict=True)]]
            ax.bar([x + (k - 0.5) * width for x in xs], meds, width, yerr=errs, capsize=3,
                   label=system)
        ax.set_xticks(list(xs), PHASES, rotation=30)
        ax.set_title(f"drain throughput, {layout}")
        ax.set_ylabel("jobs/s")
        ax.legend()
        ax = axes[1][col]
        for system, marker in zip(SYSTEMS, ("o", "s"), strict=True):
            for q, style in (("p50_ms", "-"), ("p99_ms", "--")):
                ax.plot(LEVELS, [d["e2e"][lv][q][system]["median"] for lv in LEVELS],
                        style, marker=marker, label=f"{system} {q[:3]}")
        ax.set_title(f"idle end-to-end latency, {layout}")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(out_dir: Path, stamp: str, runs: list[dict[str, Any]], summary: dict[str, Any],
          meta: dict[str, Any], with_plot: bool = True, latest: str = "latest") -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"bench-{stamp}.json", "md": out_dir / f"bench-{stamp}.md"}
    paths["json"].write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs},
                                        indent=1, default=str))
    paths["md"].write_text(markdown(summary, meta))
    if with_plot:
        paths["png"] = out_dir / f"bench-{stamp}.png"
        plot(summary, paths["png"])
    for kind, path in paths.items():
        (out_dir / f"{latest}.{kind}").write_bytes(path.read_bytes())
    return paths
