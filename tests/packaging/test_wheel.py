"""The package as a library: its wheel installs into a clean venv with nothing else and
``install(app)`` works there; pip resolves it beside a project pinned to Celery 5.4 or 5.5."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from boundary_celery.testing import Sandbox

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A wheel built from this tree and a fresh venv with only that wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
        "-w", tmp / "dist", ROOT)
    wheel = next((tmp / "dist").glob("boundary_celery-*.whl"))
    run(sys.executable, "-m", "venv", tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, timeout=600)
    yield python, wheel


def test_the_wheel_alone_installs_and_install_app_publishes_a_job(
        clean_venv: tuple[Path, Path], sandbox: Sandbox) -> None:
    python, _ = clean_venv
    queue = sandbox.queue("wheel")
    script = textwrap.dedent(f"""
        import json
        from celery import Celery
        import boundary_celery
        from boundary_celery.settings import BoundarySettings

        app = Celery("wheel-check")
        jobs = boundary_celery.install(app, BoundarySettings(
            redis={{"url": {sandbox.url!r}}}, store={{"key_prefix": {sandbox.prefix!r}}}))

        @app.task(shared=False)
        def add(x, y):
            return x + y

        result = add.apply_async((2, 3), queue={queue!r})
        job = jobs.find_job(result.id)
        print(json.dumps({{"status": job.status.value, "args": job.args,
                          "size": jobs.queue_size({queue!r})}}))
    """)
    out = run(python, "-c", script, cwd="/").stdout.strip().splitlines()[-1]
    assert json.loads(out) == {"status": "pending", "args": {"x": 2, "y": 3}, "size": 1}


@pytest.mark.parametrize("celery_pin", ["celery==5.4.0", "celery==5.5.3"])
def test_pip_resolves_it_beside_an_older_celery(clean_venv: tuple[Path, Path],
                                                celery_pin: str, tmp_path: Path) -> None:
    python, wheel = clean_venv
    report = tmp_path / "report.json"
    run(python, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
        "--report", report, wheel, celery_pin, timeout=600)
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["celery"] == celery_pin.split("==")[1]
    assert "boundary-celery" in resolved and "kombu" in resolved and "redis" in resolved
