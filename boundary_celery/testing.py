"""Test helpers for boundary-celery and for users' own tests: real Redis, real workers.

- :class:`Sandbox`: a private key prefix and queue names in a test Redis database,
  cleaned up afterwards (only what it created).
- :class:`WorkerProcess`: a real ``celery -A module worker`` subprocess in its own
  process group, ready when its heartbeat appears in the store, stopped or SIGKILLed.
- :func:`wait_for`: poll a condition with a deadline (tests never sleep blindly).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from boundary_celery.adapters.redis_connect import connect
from boundary_celery.adapters.redis_store import RedisJobStore
from boundary_celery.settings import BoundarySettings

T = TypeVar("T")

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/9"


def test_redis_url() -> str:
    """The Redis URL tests use: ``BOUNDARY_TEST_REDIS_URL`` or DB 9 on the local server."""
    return os.environ.get("BOUNDARY_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> T:
    """Return the first truthy value of ``predicate()``; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


@dataclass
class Sandbox:
    """A private corner of a test Redis: one key prefix and unique queue names."""

    url: str = field(default_factory=test_redis_url)
    prefix: str = field(default_factory=lambda: f"bt{uuid.uuid4().hex[:10]}")
    queues: list[str] = field(default_factory=list)
    #: The master group when ``url`` is a ``sentinel://`` list.
    sentinel_master: str | None = None

    @property
    def redis(self) -> redis.Redis:
        return connect(self.url, sentinel_master=self.sentinel_master, decode_responses=True)

    def _store(self) -> RedisJobStore:
        """A job store on this sandbox's database and prefix (its client made on first use)."""
        return RedisJobStore(self.url, prefix=self.prefix, sentinel_master=self.sentinel_master)

    @property
    def keys(self) -> Any:
        """The store's key names under this sandbox's prefix (``.job(id)``, ``.dlq``, ...),
        for tests that inspect Redis directly."""
        return self._store().keys

    def queue(self, name: str = "q") -> str:
        """A queue name unique to this sandbox (cleaned up with it)."""
        qname = f"{self.prefix}-{name}"
        if qname not in self.queues:
            self.queues.append(qname)
        return qname

    def env(self, **extra: Any) -> dict[str, str]:
        """Environment for a worker or scheduler subprocess using this sandbox."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNDARY_")}
        env.update(
            REDIS_URL=self.url,
            BOUNDARY_TEST_REDIS_URL=self.url,
            BOUNDARY_STORE__KEY_PREFIX=self.prefix,
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def settings(self, **overrides: Any) -> BoundarySettings:
        """Settings pointing at this sandbox (nested overrides as dicts)."""
        base: dict[str, Any] = {
            "redis": {"url": self.url, "sentinel_master": self.sentinel_master},
            "store": {"key_prefix": self.prefix},
        }
        for section, values in overrides.items():
            base.setdefault(section, {}).update(values)
        return BoundarySettings(**base)

    def cleanup(self) -> None:
        """Delete every key under the prefix and the sandbox's queue lists."""
        store = self._store()
        try:
            store.erase(self.queues)
        finally:
            store.close()


class WorkerProcess:
    """A real ``celery -A <module> worker`` subprocess for end-to-end tests."""

    def __init__(
        self,
        app_module: str,
        env: dict[str, str],
        queues: Iterable[str],
        *,
        concurrency: int | None = 1,
        pool: str | None = "prefork",
        extra_args: Iterable[str] = (),
        cwd: str | Path | None = None,
    ) -> None:
        self.app_module = app_module
        self.env = env
        self.queues = list(queues)
        self.concurrency = concurrency
        self.pool = pool
        self.extra_args = list(extra_args)
        self.cwd = str(cwd) if cwd else os.getcwd()
        self.hostname = f"w{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = Path(tempfile.mkstemp(prefix="boundary-worker-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False  # SIGTERM sent to this process (begin_stop)

    @property
    def command(self) -> list[str]:
        """``celery -A <module> worker``; ``-P``/``-c``/``-Q`` only where given (no queues:
        the worker consumes what the app declares, as a user's plain command would)."""
        return [
            sys.executable, "-m", "celery", "-A", self.app_module, "worker", "-l", "info",
            *(["-P", self.pool] if self.pool else []),
            *(["-c", str(self.concurrency)] if self.concurrency else []),
            "-n", self.hostname,
            *(["-Q", ",".join(self.queues)] if self.queues else []),
            "--without-mingle", "--without-gossip", *self.extra_args,
        ]

    def start(self) -> WorkerProcess:
        self._stopping = False
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        """Wait until the worker logs that it is ready to consume."""
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_text()[-3000:]}")
            return " ready." in self.log_text()

        wait_for(ready, timeout, 0.1, f"worker {self.hostname} ready")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def begin_stop(self) -> None:
        """Start a warm shutdown (SIGTERM, once) without waiting: workers stopped together."""
        if self.proc is not None and self.proc.poll() is None and not self._stopping:
            self._stopping = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.begin_stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (a machine crash)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
