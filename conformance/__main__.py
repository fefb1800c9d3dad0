"""``python -m conformance``: Celery's own integration suite, plain and installed.

Takes ``t/integration`` from the sdist of the installed Celery, runs the chosen test
modules on a private Redis once per variant (plain Celery; ``install(app)`` with the
user's redis:// results; ``install(app)`` with ``JobStoreBackend``) and prints the counts
and every test that passes plain but not installed. Exit status 1 when there is one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from conformance.report import render
from conformance.run import Variant, run_variant
from conformance.suite import FILES, celery_tests, celery_version

CACHE = Path(".conformance").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--variants", default="plain,installed,jobstore",
                        help="comma-separated: plain, installed, jobstore")
    parser.add_argument("--files", default=",".join(FILES),
                        help="comma-separated modules of t/integration")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression")
    parser.add_argument("--out", type=Path, default=CACHE / "results")
    args = parser.parse_args(argv)
    console = Console()
    variants = [Variant(v) for v in args.variants.split(",") if v]
    files = [f for f in args.files.split(",") if f]
    with console.status(f"Fetching Celery {celery_version()}'s t/integration"):
        root = celery_tests(CACHE)
    runs = {}
    for variant in variants:
        with console.status(f"Running {len(files)} modules: {variant.value}"):
            runs[variant.value] = run_variant(variant, root, files, args.out,
                                              select=args.select)
        console.print(f"{variant.value}: {len(runs[variant.value])} tests "
                      f"(log {args.out / (variant.value + '.log')})")
    return 1 if render(runs, console) else 0


if __name__ == "__main__":
    raise SystemExit(main())
