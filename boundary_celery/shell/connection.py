"""kombu connections that keep Boundary's transport when they fail over.

A broker URL with ``;``-separated alternates (every ``sentinel://`` list is one) makes
kombu switch to the next URL when a connection fails, and ``Connection.switch`` sets
the transport to that URL's raw scheme, overriding the ``broker_transport`` given at
construction (kombu/connection.py). After a Sentinel failover the worker and the
producers would then run on kombu's own transport: plain ``LPUSH`` publishes with no
job record, plain ``BRPOP`` fetches with no lease. :class:`BoundaryConnection`
(Celery's ``app.amqp.Connection`` once ``install()`` ran) and the connections of its
pools put Boundary's transport back when the new URL's scheme is the one it stands for.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection
from kombu.connection import ConnectionPool

from boundary_celery.shell.flower import ALIASES

try:  # kombu >= 5.5: a pool's connections are PooledConnection, not clones of ours
    from kombu.connection import PooledConnection as _KombuPooled
except ImportError:  # kombu 5.4: ConnectionPool.new() clones the connection (ours)
    _KombuPooled = None  # type: ignore[assignment,misc]


class _KeepsTransport:
    """``switch`` that keeps a Boundary transport alias over the URL's raw scheme."""

    transport_cls: Any

    def switch(self, conn_str: Any) -> None:
        transport = self.transport_cls
        super().switch(conn_str)  # type: ignore[misc]
        ours = ALIASES.get(transport) if isinstance(transport, str) else None
        if ours is not None and self.transport_cls == ours[0]:
            self.transport_cls = transport


class BoundaryConnection(_KeepsTransport, Connection):  # type: ignore[misc]
    """kombu's Connection (see the module docstring); its pools hold the same kind."""

    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        if _PooledConnection is None:
            return super().Pool(limit=limit, **kwargs)
        return _ConnectionPool(self, limit=limit, **kwargs)


_PooledConnection: Any = (None if _KombuPooled is None else
                          type("_PooledConnection", (_KeepsTransport, _KombuPooled), {}))


class _ConnectionPool(ConnectionPool):  # type: ignore[misc]
    def new(self) -> Any:
        return _PooledConnection(self, **dict(self.connection._info(resolve=False)))
