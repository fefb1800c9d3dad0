"""A throwaway Redis Sentinel group (master, replicas, sentinels) for tests and benchmarks.

Built on :class:`~boundary_celery.redis_server.RedisServer`: every process runs on a free
127.0.0.1 port with its own working directory and process group, and is stopped at the
end. The sentinels watch the master under :data:`MASTER_NAME` with a quorum of 2 and
``down-after-milliseconds`` 1000, so a killed master is replaced within a few seconds::

    from boundary_celery.redis_sentinel import SentinelGroup

    with SentinelGroup(replicas=1, sentinels=3) as group:
        print(group.url)          # sentinel://127.0.0.1:<p1>;sentinel://127.0.0.1:<p2>;...
        group.kill_master()       # SIGKILL; the sentinels promote the replica
        group.wait_failover()     # the new master's port

Standalone: the standard library, redis-py and :mod:`boundary_celery.redis_server`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

import redis

from boundary_celery.redis_server import RedisServer, RedisServerError

__all__ = ["MASTER_NAME", "SentinelGroup", "SentinelServer"]

#: The master name the group's sentinels monitor.
MASTER_NAME = "boundary-master"


class SentinelServer(RedisServer):
    """``redis-server <conf> --sentinel`` monitoring ``127.0.0.1:<master_port>``."""

    def __init__(self, master_port: int, *, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000, binary: str | None = None) -> None:
        super().__init__(binary, workdir_prefix="boundary-sentinel-")
        self.master_port = master_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def conf_path(self) -> Path:
        return self.workdir / "sentinel.conf"

    def command(self, port: int) -> list[str]:
        """The sentinel's command line; writes its config file (sentinels rewrite it)."""
        self.conf_path.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {self.workdir}", "loglevel warning",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", "",
        ]))
        return [self.binary, str(self.conf_path), "--sentinel"]

    def master_port_seen(self) -> int | None:
        """The master's port as this sentinel sees it now (None: it does not answer)."""
        client = self.client(socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            addr = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return int(addr[1]) if addr else None
        except (redis.exceptions.RedisError, OSError):
            return None
        finally:
            client.close()


class SentinelGroup:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels on loopback.

    ``server_args``: extra arguments for the master and the replicas (e.g. AOF).
    """

    def __init__(self, *, replicas: int = 1, sentinels: int = 3,
                 server_args: Iterable[str] = ()) -> None:
        self.server_args = tuple(server_args)
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelServer] = []
        self.master: RedisServer | None = None

    @property
    def url(self) -> str:
        """The broker URL: every sentinel, ``;``-separated (kombu's form), database 0."""
        return ";".join(f"sentinel://127.0.0.1:{s.port}/0" for s in self.sentinels)

    def start(self, timeout: float = 20.0) -> SentinelGroup:
        """Start the master, its replicas (synced) and the sentinels (each seeing every
        replica and the other sentinels)."""
        self.master = RedisServer(extra_args=self.server_args).start()
        self.servers.append(self.master)
        for _ in range(self.replica_count):
            replica = RedisServer(extra_args=(*self.server_args, "--replicaof", "127.0.0.1",
                                              str(self.master.port)))
            self.servers.append(replica.start())
        deadline = time.monotonic() + timeout
        self._wait(lambda: self._replicas_online() >= self.replica_count, deadline,
                   "the replicas did not sync")
        for _ in range(self.sentinel_count):
            sentinel = SentinelServer(self.master.port)
            self.sentinels.append(sentinel)
            sentinel.start()
        self._wait(self._sentinels_ready, deadline, "the sentinels did not see each other")
        return self

    def _replicas_online(self) -> int:
        assert self.master is not None
        client = self.master.client(socket_timeout=1)
        try:
            info = client.info("replication")
            return sum(1 for key, value in info.items() if key.startswith("slave")
                       and isinstance(value, dict) and value.get("state") == "online")
        finally:
            client.close()

    def _sentinels_ready(self) -> bool:
        want_sentinels = self.sentinel_count - 1
        for sentinel in self.sentinels:
            client = sentinel.client(socket_timeout=1)
            try:
                info = client.sentinel_master(MASTER_NAME)
                if info["num-other-sentinels"] < want_sentinels or \
                        info["num-slaves"] < self.replica_count:
                    return False
            except (redis.exceptions.RedisError, OSError):
                return False
            finally:
                client.close()
        return True

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, message: str) -> None:
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise RedisServerError(message)

    def kill_master(self) -> int:
        """SIGKILL the current master (it stays down); its port."""
        master = self.current_master()
        assert master.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(master.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            master.proc.wait(5)
        return master.port

    def signal_replicas(self, signum: int) -> None:
        """Send ``signum`` to every running replica (SIGSTOP: they fall behind the
        master, as over a partition; SIGCONT: they catch up)."""
        try:
            master: RedisServer | None = self.current_master()
        except RedisServerError:  # killed: every server still running is a replica
            master = None
        for server in self.servers:
            if server is not master and server.running and server.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.proc.pid, signum)

    def current_master(self) -> RedisServer:
        """The server the sentinels name master now."""
        ports = {p for s in self.sentinels if (p := s.master_port_seen()) is not None}
        for server in self.servers:
            if server.port in ports and server.running:
                return server
        raise RedisServerError(f"no running master (sentinels say {sorted(ports)})")

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names a running master other than ``old_port``, and
        that server accepts writes; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = {s.master_port_seen() for s in self.sentinels}
            if len(ports) == 1 and (port := ports.pop()) not in (None, old_port):
                server = next((s for s in self.servers if s.port == port), None)
                if server is not None and server.running and self._writable(server):
                    return int(port)  # type: ignore[arg-type]
            time.sleep(0.1)
        raise RedisServerError(f"no failover from port {old_port} within {timeout} s")

    @staticmethod
    def _writable(server: RedisServer) -> bool:
        client = server.client(socket_timeout=1)
        try:
            return client.info("replication").get("role") == "master"
        except (redis.exceptions.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop every process of the group and remove their directories."""
        for process in [*self.sentinels, *self.servers]:
            process.stop()

    def __enter__(self) -> SentinelGroup:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
