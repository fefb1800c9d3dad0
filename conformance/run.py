"""One run of Celery's integration tests: plain, or with every app installed."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from boundary_celery.redis_server import RedisServer

#: The result backend the "jobstore" variant sets (Celery resolves it by name).
JOB_STORE_BACKEND = "boundary_celery.shell.results:JobStoreBackend"

REPO = Path(__file__).resolve().parent.parent

#: The bound of one variant's run (each test is bounded by pytest-timeout too).
RUN_TIMEOUT_S = 3600


class Variant(StrEnum):
    """What the app under test is: Celery alone, installed with the user's redis://
    results, or installed with results read from the job store."""

    PLAIN = "plain"
    INSTALLED = "installed"
    JOBSTORE = "jobstore"


@dataclass(frozen=True)
class Outcome:
    status: str  # passed, failed, skipped
    detail: str = ""


def run_variant(variant: Variant, tests_root: Path, files: Sequence[str], out_dir: Path,
                *, select: str | None = None, timeout_s: int = 120) -> dict[str, Outcome]:
    """Run ``files`` of ``t/integration`` on a private Redis; each test's outcome by id."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    junit = out_dir / f"{variant.value}.xml"
    log = out_dir / f"{variant.value}.log"
    junit.unlink(missing_ok=True)  # never read an earlier run's report
    server = RedisServer()
    server.start()
    try:
        broker = f"redis://127.0.0.1:{server.port}/0"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BOUNDARY_", "CELERY_"))}
        env.update(
            TEST_BROKER=broker,
            TEST_BACKEND=JOB_STORE_BACKEND if variant is Variant.JOBSTORE else broker,
            REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port),
            PYTHONPATH=os.pathsep.join([str(tests_root), str(REPO)]),
            PYTHONUNBUFFERED="1",
        )
        # Celery's own pytest settings (pyproject.toml, not in the sdist's t/): test
        # classes named test_*, its markers; its fixtures come from celery.contrib.pytest.
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rN",
               "-o", "addopts=", "-o", "markers=flaky", "-o", "python_classes=test_*",
               f"--timeout={timeout_s}", f"--junitxml={junit}", "--rootdir", str(tests_root),
               "-W", "ignore::DeprecationWarning", "-p", "celery.contrib.pytest"]
        if variant is not Variant.PLAIN:
            cmd += ["-p", "conformance.plugin"]
        if select:
            cmd += ["-k", select]
        cmd += [f"t/integration/{name}" for name in files]
        with log.open("wb") as out:
            subprocess.run(cmd, cwd=tests_root, env=env, stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, check=False, timeout=RUN_TIMEOUT_S)
    finally:
        server.stop()
    return read_junit(junit) if junit.exists() else {}


def read_junit(path: Path) -> dict[str, Outcome]:
    """Each test case of a JUnit XML report, by ``module::Class::name`` id."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        # "t.integration.test_tasks.test_tasks" -> t/integration/test_tasks.py::test_tasks
        mod_end = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts))
        test_id = "/".join(parts[:mod_end + 1]) + ".py"
        rest = parts[mod_end + 1:]
        test_id = "::".join([test_id, *rest, case.get("name", "")])
        status, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, detail = "failed", _first_line(child.get("message"))
                break
            if child.tag == "skipped":
                status, detail = "skipped", _first_line(child.get("message"))
        outcomes[test_id] = Outcome(status, detail)
    return outcomes


def _first_line(message: str | None) -> str:
    return (message or "").strip().split("\n")[0][:300]
