"""Celery's own integration tests, taken from the sdist of the installed Celery."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

#: The test modules the conformance run covers (of ``t/integration``).
FILES = ("test_tasks.py", "test_canvas.py", "test_group_chains.py", "test_inspect.py",
         "test_redis_backend.py", "test_loader.py")


def celery_version() -> str:
    return version("celery")


def celery_tests(cache: Path) -> Path:
    """A directory holding Celery's ``t/`` package (``t/integration`` and its helpers) for
    the installed Celery, downloaded once into ``cache`` with pip; only ``t/``, so the
    tests import the installed ``celery``, not the sdist's copy."""
    ver = celery_version()
    root = cache / f"celery-{ver}"
    if (root / "t" / "integration" / "conftest.py").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"celery-{ver}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "--dest", str(cache), f"celery=={ver}"],
            check=True, timeout=600)
    staging = cache / f"celery-{ver}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    prefix = f"celery-{ver}/t/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith(prefix) and not m.name.startswith(prefix + "unit/")
                   and not m.name.startswith(prefix + "smoke/")]
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(root, ignore_errors=True)
    (staging / f"celery-{ver}").rename(root)
    shutil.rmtree(staging, ignore_errors=True)
    return root
