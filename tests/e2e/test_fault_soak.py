"""No acknowledged job lost, none run twice at once, under faults (issue 18).

The soak tool (``python -m benchmarks.soak``) at a small size, as a subprocess, with the
shipped defaults: its own AOF Redis and 3 prefork workers, 2,060 jobs enqueued up front,
two producers publishing 10 calls/s each through a 30 s fault window (the installed app's
``jobs.enqueue`` / ``apply_async`` and a plain Celery app's ``send_task``), Redis paused
(SIGSTOP) for 1.5, 2.5 and 4 s, one Redis SIGKILL + restart on its AOF, and one or two
worker SIGKILLs while the up-front jobs drain. Handler runs are counted outside the
system (a file per process). The run must show: every acknowledged job ended (completed,
failed in the DLQ, or cancelled), no record left non-terminal, no two runs of one job
overlapping in time, and every repeated run explained (a failed attempt retried, or its
worker killed before the ack).

The analysis itself is checked on handler notes written by hand: an overlap, an
unexplained repeat and a kill between two runs are each told apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import soak
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

# Kills every 4-8 s (at most 2) so that they fall while the up-front jobs still drain.
ARGS = ["--jobs", "2000", "--scheduled", "50", "--flaky", "10", "--window-s", "30",
        "--rate", "10", "--pauses", "1.5,2.5,4", "--redis-down-s", "2",
        "--kill-every", "4,8", "--max-kills", "2", "--deadline-s", "150", "--seed", "18"]


@pytest.mark.timeout(300)
def test_faults_lose_no_acknowledged_job_and_never_run_one_twice_at_once(tmp_path: Path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOUNDARY_", "CELERY_", "REDIS_", "SOAK_"))}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.soak", *ARGS,
                           "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    reports = sorted(tmp_path.glob("soak-*.json"))
    assert reports, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(reports[-1].read_text())
    f = result["figures"]
    evidence = json.dumps(f["evidence"], indent=1)[:6000]

    # the faults happened, while both producers published
    pauses = [x for x in result["chaos"]["faults"] if x["kind"] == "pause"]
    crashes = [x for x in result["chaos"]["faults"] if x["kind"] == "crash"]
    assert sorted(x["seconds"] for x in pauses) == [1.5, 2.5, 4.0]
    assert all(x["t_start"] and x["t_end"] for x in pauses + crashes)
    assert len(crashes) == 1
    assert 1 <= len(result["chaos"]["kills"]) <= 2
    assert f["by_source"]["boundary"]["acked"] > 100
    assert f["by_source"]["plain"]["acked"] > 100
    assert f["acknowledged"] >= 2300

    assert f["lost"] == 0, (f["lost_by_reason"], evidence)
    assert f["non_terminal"] == 0, (f["non_terminal_by_status"], evidence)
    assert f["concurrent"] == 0, (f["concurrent_runs"], evidence)
    assert f["unexplained_repeats"] == 0, (f["repeated"], evidence)
    assert all(r["reason"] != "unexplained" for r in f["repeated"])
    assert f["repeated_runs"] == len(f["repeated"])  # every repeat listed, none cut off
    assert proc.returncode == 0, (result["verdict"], proc.stdout[-3000:])


def _notes(runs_dir: Path, name: str, lines: list[str]) -> None:
    runs_dir.mkdir(exist_ok=True)
    (runs_dir / name).write_text("".join(f"{line}\n" for line in lines))


def test_the_analysis_tells_overlaps_kills_and_unexplained_repeats_apart(tmp_path: Path):
    runs = tmp_path / "runs"
    # job a: two runs overlapping in time (w1 and w2 at once)
    _notes(runs, "soak-w1-11.log", ["a start soak-w1@soak 11 100.0", "a ok soak-w1@soak 11 102.0",
                                    "b start soak-w1@soak 11 103.0",
                                    "b ok soak-w1@soak 11 103.5",
                                    "c start soak-w1@soak 11 104.0"])
    _notes(runs, "soak-w2-21.log", ["a start soak-w2@soak 21 101.0", "a ok soak-w2@soak 21 101.5",
                                    "c start soak-w2@soak 21 130.0",
                                    "c ok soak-w2@soak 21 130.1",
                                    "d start soak-w2@soak 21 140.0",
                                    "d fail soak-w2@soak 21 140.1",
                                    "d start soak-w2@soak 21 142.0",
                                    "d ok soak-w2@soak 21 142.1"])
    _notes(runs, "soak-w3-31.log", ["b start soak-w3@soak 31 110.0", "b ok soak-w3@soak 31 110.1"])
    chaos = soak.Chaos(kills=[{"t": 105.0, "worker": "soak-w1@soak", "pid": 10}],
                       stopped_at=200.0)
    notes = soak.read_notes(runs)
    assert notes.torn_lines == 0
    # c was cut by w1's kill at 105 (its run ends there), so c's runs do not overlap
    assert list(soak.concurrent_runs(notes, chaos)) == ["a"]
    scan = _scan(retried_by={"d": {"soak-w2"}}, received_by={"soak-w1": {"a", "b", "c"}},
                 completed_by={"a": {"soak-w1"}})
    reasons = {(r["job_id"], r["reason"]) for r in soak.explain_repeats(notes, chaos, scan)}
    assert reasons == {
        ("a", "unexplained"),  # w2 was never killed
        ("b", "killed after the body ran, before the ack"),
        ("c", "killed mid-run"),
        ("d", "retry after a failed attempt (its policy)"),
    }
    # a completion the killed worker logged makes the repeat unexplained
    scan.completed_by["b"] = {"soak-w1"}
    logged = {(r["job_id"], r["reason"]) for r in soak.explain_repeats(notes, chaos, scan)}
    assert ("b", "unexplained") in logged
    # a failed attempt whose retry was never logged: explained only by a kill
    scan.retried_by.clear()
    assert ("d", "unexplained") in {(r["job_id"], r["reason"])
                                    for r in soak.explain_repeats(notes, chaos, scan)}
    # redelivery: c (held by w1, not completed there) started again 25 s after the kill
    redelivery = soak.redeliveries(notes, chaos, scan, lease_s=15.0)
    assert (redelivery["rerun"], redelivery["max_s"], redelivery["over_bound"]) == (1, 25.0, [])


def _scan(**fields: dict[str, set[str]]) -> soak.LogScan:
    return soak.LogScan(counts={}, skip_reasons={}, completed_by=fields.get("completed_by", {}),
                        completions=Counter(), received_by=fields.get("received_by", {}),
                        retried_by=fields.get("retried_by", {}), lapsed_at=[])
