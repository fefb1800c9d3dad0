"""Make Boundary's broker look like plain Redis to Flower and in Celery's logs.

Celery gives kombu ``broker_transport`` as the connection's transport name, and
``Connection.as_uri()`` uses that name as the URL scheme. With the dotted path of our
transport the broker URL reads ``boundary_celery.shell.transport:Transport://...``: the
worker logs "Connected to boundary_celery.shell.transport:Transport://..." and Flower,
which picks its broker client by URL scheme (``flower/utils/broker.py``), answers
``/api/queues/length`` with 404 "broker is not supported".

The fix uses kombu's two alias tables, without touching kombu's own ``redis`` alias:

- ``kombu.transport.TRANSPORT_ALIASES`` gets ``boundary-redis`` / ``boundary-rediss``,
  both resolving to :class:`boundary_celery.shell.transport.Transport`, and
  ``boundary-sentinel``, resolving to its ``SentinelTransport``;
- ``kombu.Connection.resolve_aliases`` (the table kombu itself uses to show ``pyamqp`` as
  ``amqp``) displays them as ``redis`` / ``rediss`` / ``sentinel``.

So ``as_uri()`` is ``redis://:**@host:6379/0`` again. Flower then builds its Redis client
from that URL and ``broker_transport_options`` (``priority_steps`` 0, 2, 4, 6, 8 and ``sep``, both
set by ``install()``), so its queue lengths add up every Boundary level.
"""

from __future__ import annotations

from urllib.parse import urlparse

from kombu import Connection
from kombu.transport import TRANSPORT_ALIASES

#: The kombu transport class a Boundary app uses with a Redis URL.
TRANSPORT_PATH = "boundary_celery.shell.transport:Transport"
#: ... and with a ``sentinel://`` URL.
SENTINEL_TRANSPORT_PATH = "boundary_celery.shell.transport:SentinelTransport"

#: Transport alias -> (the URL scheme it is shown as, and Flower reads; its class).
ALIASES: dict[str, tuple[str, str]] = {
    "boundary-redis": ("redis", TRANSPORT_PATH),
    "boundary-rediss": ("rediss", TRANSPORT_PATH),
    "boundary-sentinel": ("sentinel", SENTINEL_TRANSPORT_PATH),
}


def register_transport() -> None:
    """Register the Boundary transport aliases with kombu (idempotent)."""
    for alias, (scheme, path) in ALIASES.items():
        TRANSPORT_ALIASES[alias] = path
        Connection.resolve_aliases[alias] = scheme


def transport_for(url: str) -> str:
    """The ``broker_transport`` name for a Redis broker URL (registers the aliases)."""
    register_transport()
    scheme = urlparse(url.split(";", 1)[0]).scheme
    return {"rediss": "boundary-rediss", "sentinel": "boundary-sentinel"}.get(
        scheme, "boundary-redis")
