"""Real ``celery worker`` subprocesses, each in its own process group, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.apps.common import READY_KEY

ROOT = Path(__file__).resolve().parent.parent
APPS = {"plain": "benchmarks.apps.plain_app", "boundary": "benchmarks.apps.boundary_app"}


@dataclass(frozen=True)
class Layout:
    """``processes`` worker processes, each ``-P pool -c concurrency``."""

    processes: int
    concurrency: int
    pool: str = "prefork"

    @property
    def name(self) -> str:
        """As parsed: ``"2x2"`` for prefork, ``"2x2:threads"`` for another pool (two
        layouts of one size stay apart in the runs and the summary)."""
        size = f"{self.processes}x{self.concurrency}"
        return size if self.pool == "prefork" else f"{size}:{self.pool}"

    @classmethod
    def parse(cls, text: str) -> Layout:
        """``"2x2"`` = 2 worker processes x concurrency 2 (``"1x1:solo"`` for a pool)."""
        spec, _, pool = text.partition(":")
        procs, _, conc = spec.lower().partition("x")
        return cls(int(procs), int(conc or 1), pool or "prefork")


def worker_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOUNDARY_", "CELERY_", "REDIS_"))}
    env.update(BENCH_REDIS_URL=redis_url, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


class WorkerGroup:
    """The worker processes of one layout for one system."""

    def __init__(self, system: str, layout: Layout, redis_url: str, queues: Iterable[str],
                 loglevel: str = "warning") -> None:
        self.system = system
        self.layout = layout
        self.redis_url = redis_url
        self.queues = list(queues)
        self.loglevel = loglevel
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hostnames: list[str] = []
        self.logs: list[Path] = []

    def command(self, hostname: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", APPS[self.system], "worker",
                "-l", self.loglevel, "-P", self.layout.pool, "-c", str(self.layout.concurrency),
                "-n", hostname, "-Q", ",".join(self.queues),
                "--without-mingle", "--without-gossip", "--without-heartbeat"]

    def start(self, timeout: float = 60.0) -> WorkerGroup:
        client = redis.Redis.from_url(self.redis_url)
        client.delete(READY_KEY)
        env = worker_env(self.redis_url)
        for _ in range(self.layout.processes):
            hostname = f"{self.system}-{uuid.uuid4().hex[:6]}@bench"
            fd, name = tempfile.mkstemp(prefix=f"bench-{self.system}-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
            with log_path.open("ab") as log:
                self.procs.append(subprocess.Popen(
                    self.command(hostname), env=env, cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                ))
            self.hostnames.append(hostname)
            self.logs.append(log_path)
        deadline = time.monotonic() + timeout
        try:
            while client.scard(READY_KEY) < len(self.procs):
                for proc, log_path in zip(self.procs, self.logs, strict=True):
                    if proc.poll() is not None:
                        raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    tail = self.logs[0].read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"workers not ready after {timeout} s; log:\n{tail}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        return self

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL every process group; remove the logs."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for log_path in self.logs:
            log_path.unlink(missing_ok=True)
        self.procs.clear()

    def __enter__(self) -> WorkerGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
