"""Smoke test: ``python -m benchmarks --quick`` runs end to end (no timing assertions)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_quick_benchmark_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    summary = data["summary"]
    drain = summary["layouts"]["1x1"]["drain"]
    for phase in ("critical", "high", "normal", "low", "bulk", "mixed"):
        for system in ("boundary", "plain"):
            value = drain[phase][system]["median"]
            assert isinstance(value, float) and value > 0 and not math.isnan(value)
    for metric in ("enqueue_p50_ms", "bulk_rate", "bytes_per_job"):
        for system in ("boundary", "plain"):
            assert summary["enqueue"][metric][system]["median"] > 0
    for system in ("boundary", "plain"):
        assert summary["commands"]["commands_per_job"][system]["median"] > 0
        e2e = summary["layouts"]["1x1"]["e2e"]["critical"]["p50_ms"][system]["median"]
        assert e2e > 0
    assert summary["scheduler"]["2000"]["due_per_s"]["median"] > 0
    assert all(run["data"].get("queued_ok", True) for run in data["runs"])
    md = (tmp_path / "latest.md").read_text()
    assert "| critical |" in md and "plain" in md and "## Targets" in md
    assert (tmp_path / "latest.png").stat().st_size > 0
