"""A throwaway ``redis-server`` for demos, benchmarks and tests.

:class:`RedisServer` runs a ``redis-server`` subprocess on a free loopback port (never the
shared 6379), bound to ``127.0.0.1``, with no persistence by default (``--save ''
--appendonly no``) and its working files in a temporary directory. The process gets its
own process group and is stopped at the end (SIGTERM to the group, then SIGKILL if it
lingers); the temporary directory is removed. It is a context manager::

    from boundary_celery.redis_server import RedisServer

    with RedisServer() as server:
        server.client().set("k", "v")
        print(server.url)  # redis://127.0.0.1:<port>/0

    # extra server arguments, e.g. a test of AOF persistence
    with RedisServer(extra_args=("--appendonly", "yes")) as server: ...

    # a port fixed up front: its url is known before the server runs (a client started
    # before Redis)
    server = RedisServer(port=free_port())

    # a server that loads its dataset until told to finish (clients get LOADING errors)
    with RedisServer(extra_args=SLOW_LOADING_ARGS) as server:
        server.restart_loading()
        ...
        server.finish_loading()

:func:`find_redis_server` finds the binary (``PATH``, then ``/usr/sbin``, ``/usr/bin``,
``/usr/local/bin``); ``BOUNDARY_DEMO_NO_REDIS=1`` makes it report none (the demo's switch to
its in-memory fallback). :func:`free_port` and :func:`ping` are the small pieces it is made of.

Standalone: only the standard library and redis-py; nothing else from ``boundary_celery``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

__all__ = [
    "NO_REDIS_ENV",
    "REDIS_SERVER_DIRS",
    "SHARED_PORT",
    "SLOW_LOADING_ARGS",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "free_port",
    "ping",
]

#: Searched after ``PATH`` (distributions put redis-server in sbin, often not on PATH).
REDIS_SERVER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")
#: Set to 1/true/yes: :func:`find_redis_server` reports no binary (see its ``honor_env``).
NO_REDIS_ENV = "BOUNDARY_DEMO_NO_REDIS"
#: The default Redis port, assumed shared with other users: never handed out by free_port().
SHARED_PORT = 6379
#: Server arguments under which loading an RDB takes 1 ms a key and the server answers
#: between keys (INFO, CONFIG SET): see :meth:`RedisServer.restart_loading`.
SLOW_LOADING_ARGS = ("--key-load-delay", "1000",
                     "--loading-process-events-interval-bytes", "1024")


class RedisServerError(RuntimeError):
    """No redis-server binary, or it did not start; the message says why."""


def find_redis_server(*, honor_env: bool = True) -> str | None:
    """The path of a ``redis-server`` executable, or None.

    Looks on ``PATH``, then in :data:`REDIS_SERVER_DIRS`. With ``honor_env`` (the default),
    ``BOUNDARY_DEMO_NO_REDIS=1`` (or true/yes) makes it return None, as if none were installed.
    """
    if honor_env and os.environ.get(NO_REDIS_ENV, "").strip().lower() in ("1", "true", "yes"):
        return None
    found = shutil.which("redis-server")
    if found:
        return found
    for directory in REDIS_SERVER_DIRS:
        candidate = Path(directory) / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now; never 6379.

    Another process may still take it before it is used: :meth:`RedisServer.start` retries.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != SHARED_PORT:
            return port


def ping(url: str, timeout: float = 2.0) -> bool:
    """True when the Redis at ``url`` answers PING within ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def _wait_exited(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for child ``pid`` to exit, without reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped elsewhere
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


class RedisServer:
    """A throwaway ``redis-server`` subprocess on a free 127.0.0.1 port.

    ``binary``: the executable (default: :func:`find_redis_server`, ignoring
    ``BOUNDARY_DEMO_NO_REDIS``: asking for a server means wanting one).
    ``extra_args``: more server arguments, appended after the defaults so they win, e.g.
    ``("--appendonly", "yes")``. ``workdir_prefix``: of the temporary ``--dir``.
    ``port``: a fixed port, for a server whose :attr:`url` is needed before it runs
    (:meth:`start` then tries that port only); by default (0) :meth:`start` chooses a
    free one, and :attr:`url` and :meth:`client` are usable once it returned.
    :meth:`stop` is idempotent and also removes the working directory; use the instance
    as a context manager to have both done for you.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        extra_args: Iterable[str] = (),
        workdir_prefix: str = "boundary-redis-",
        port: int = 0,
    ) -> None:
        found = binary or find_redis_server(honor_env=False)
        if not found:
            raise RedisServerError(
                "redis-server not found on PATH or in " + ", ".join(REDIS_SERVER_DIRS)
                + " (apt-get install redis-server)"
            )
        self.binary = found
        self.extra_args = tuple(extra_args)
        self.workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix))
        self.fixed_port = port
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    # -- where -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (raises before :meth:`start`)."""
        if not self.port:
            raise RedisServerError("the redis-server is not started yet (no port)")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log (stdout and stderr), in the working directory."""
        return self.workdir / "redis.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, port: int) -> list[str]:
        """The full ``redis-server`` command line for ``port``."""
        return [
            self.binary, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
            *self.extra_args,
        ]

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for this server (``kwargs`` go to ``Redis.from_url``)."""
        return redis.Redis.from_url(self.url, **kwargs)

    def version(self) -> str:
        """The server's ``redis_version``."""
        client = self.client()
        try:
            return str(client.info("server").get("redis_version"))
        finally:
            client.close()

    def log_tail(self, lines: int = 5) -> list[str]:
        """The last ``lines`` lines of the server log."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()[-lines:]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0, attempts: int = 3) -> RedisServer:
        """Start on a free port (or the fixed one) and wait until it answers (INFO: a server
        still loading its dataset does).

        A free port can be taken between the probe and the server's bind: up to
        ``attempts`` ports are tried, each for ``timeout`` seconds (a fixed port: that
        one only). RedisServerError (with the end of the server log) when none worked.
        """
        if self.running:
            return self
        for _ in range(1 if self.fixed_port else max(attempts, 1)):
            self.port = self.fixed_port or free_port()
            if self._spawn_and_wait(timeout):
                return self
            self._stop_process()
        self.port = self.fixed_port
        raise RedisServerError("redis-server did not start: " + " | ".join(self.log_tail()))

    def _spawn_and_wait(self, timeout: float) -> bool:
        """Start the server on :attr:`port`; True once it answers within ``timeout``."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(self.port), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return True
            time.sleep(0.05)
        return False

    def _answers(self) -> bool:
        """Our process (not another server that had the port first) answers on the port."""
        if self.proc is None:
            return False
        client = self.client(socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return int(client.info("server").get("process_id", -1)) == self.proc.pid
        except (redis.exceptions.RedisError, OSError):
            return False
        finally:
            client.close()

    def _stop_process(self, timeout: float = 5.0) -> None:
        """SIGTERM to the server's process group, then SIGKILL to what is left of it.

        The server is reaped only after both signals, so its pid (the group id) cannot
        have been reused by an unrelated process when they are sent.
        """
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:  # never started, or already reaped
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        _wait_exited(proc.pid, timeout)
        # Whatever is left in the group (the server if it ignored TERM, or a child it
        # forked, e.g. an AOF rewrite): gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)

    def restart(self, *, down_s: float = 0.0, crash: bool = True,
                timeout: float = 10.0, loaded: bool = True) -> RedisServer:
        """Stop the server (SIGKILL when ``crash``, else TERM), wait ``down_s`` seconds,
        and start it again on the same port and directory (with ``--appendonly yes`` it
        comes back with its data). Returns once its data is loaded (commands work; at most
        30 s), or with ``loaded=False`` as soon as it answers INFO, possibly still loading."""
        if self.proc is None or not self.port:
            raise RedisServerError("the redis-server is not started")
        if crash:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
            self.proc = None
        else:
            self._stop_process()
        time.sleep(down_s)
        if not self._spawn_and_wait(timeout):
            raise RedisServerError("redis-server did not restart: "
                                   + " | ".join(self.log_tail()))
        if loaded:
            self.wait_loaded()  # its own bound: a large AOF loads for longer than it starts
        return self

    def restart_loading(self, keys: int = 20_000) -> RedisServer:
        """Write ``keys`` filler keys (``filler:<n>``), SAVE, and restart onto that RDB.

        Started with :data:`SLOW_LOADING_ARGS`, the server is back (answering INFO) while
        it still loads, about ``keys`` ms, or until :meth:`finish_loading`: meanwhile
        other commands get ``LOADING`` errors (redis-py's BusyLoadingError).
        """
        client = self.client()
        try:
            pipe = client.pipeline(transaction=False)
            for start in range(0, keys, 1000):
                pipe.mset({f"filler:{n}": "x" * 100
                           for n in range(start, min(start + 1000, keys))})
            pipe.execute()
            client.save()
        finally:
            client.close()
        return self.restart(crash=False, loaded=False)

    def loading(self) -> bool:
        """The server is loading its dataset (``INFO persistence``)."""
        client = self.client()
        try:
            return bool(int(client.info("persistence").get("loading", 0)))
        finally:
            client.close()

    def finish_loading(self, timeout: float = 30.0) -> None:
        """Lift the per-key load delay (CONFIG SET is served while loading) and wait until
        the dataset is loaded."""
        client = self.client()
        try:
            client.config_set("key-load-delay", 0)
        finally:
            client.close()
        self.wait_loaded(timeout)

    def wait_loaded(self, timeout: float = 30.0) -> None:
        """Wait until the server is no longer loading its dataset."""
        deadline = time.monotonic() + timeout
        while self.loading():
            if time.monotonic() > deadline:
                raise RedisServerError(f"still loading after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (TERM, then KILL) and remove its working directory."""
        try:
            self._stop_process()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
