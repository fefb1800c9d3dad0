"""A real TCP peer on 127.0.0.1 standing in for Redis: it relays to the test Redis, or,
dark, accepts connections and never answers (a hung or partitioned Redis)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from urllib.parse import urlparse


class LoopbackRedis:
    """Relays to ``upstream`` (a ``redis://host:port/db`` URL) until :meth:`go_dark`;
    with no upstream it is dark from the start. A connection that saw the dark keeps
    swallowing what it reads (its stream is out of step), while new connections relay
    again after :meth:`go_light`. :meth:`reset` drops every connection (a restart)."""

    def __init__(self, upstream: str | None = None) -> None:
        parsed = urlparse(upstream) if upstream else None
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 6379) if parsed else None
        self.db = (parsed.path.lstrip("/") or "0") if parsed else "0"
        self.dark = upstream is None
        self.connections = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def go_dark(self) -> None:
        self.dark = True

    def go_light(self) -> None:
        self.dark = False

    def reset(self) -> None:
        """Drop every open connection, as a Redis restart does."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._server.close()
        self.reset()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        if not self.dark and self.upstream is not None:
            upstream = socket.create_connection(self.upstream)
            self._track(upstream)
        swallowing = upstream is None
        peers = [client] if upstream is None else [client, upstream]
        try:
            while True:
                ready, _, _ = select.select(peers, [], [], 0.05)
                swallowing = swallowing or self.dark
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not swallowing and upstream is not None:
                        (upstream if sock is client else client).sendall(data)
        except (OSError, ValueError):  # reset() closed a socket under us
            return
        finally:
            for sock in peers:
                sock.close()
