"""Counts per run and the regressions: tests that pass plain and not installed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from conformance.run import Outcome

Outcomes = Mapping[str, Outcome]


def counts(outcomes: Outcomes) -> Counter[str]:
    return Counter(o.status for o in outcomes.values())


def regressions(plain: Outcomes, other: Outcomes) -> dict[str, Outcome]:
    """Tests that passed plain but did not pass in ``other`` (failed, or skipped there)."""
    return {tid: other.get(tid, Outcome("missing"))
            for tid, o in sorted(plain.items())
            if o.status == "passed" and other.get(tid, Outcome("missing")).status != "passed"}


def render(runs: Mapping[str, Outcomes], console: Console) -> int:
    """Print the table and each run's regressions; returns how many regressions in all."""
    table = Table(title="Celery's t/integration, plain and installed")
    for col in ("run", "passed", "failed", "skipped", "regressions"):
        table.add_column(col, justify="left" if col == "run" else "right")
    plain = runs.get("plain")
    total = 0
    for name, outcomes in runs.items():
        c = counts(outcomes)
        reg = regressions(plain, outcomes) if plain is not None and name != "plain" else {}
        total += len(reg)
        table.add_row(name, str(c["passed"]), str(c["failed"]), str(c["skipped"]),
                      "-" if name == "plain" or plain is None else str(len(reg)))
    console.print(table)
    if plain is not None:
        for name, outcomes in runs.items():
            if name == "plain":
                continue
            for tid, o in regressions(plain, outcomes).items():
                console.print(f"[bold]{name}[/] {o.status}: {tid}  {o.detail[:160]}",
                              highlight=False, soft_wrap=True)
    return total
