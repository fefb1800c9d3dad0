"""Make Boundary's broker look like plain Redis to Flower and in Celery's logs.

Celery gives kombu ``broker_transport`` as the connection's transport name, and
``Connection.as_uri()`` uses that name as the URL scheme. With the dotted path of our
transport the broker URL reads ``boundary_celery.shell.transport:Transport://...``: the
worker logs "Connected to boundary_celery.shell.transport:Transport://..." and Flower,
which picks its broker client by URL scheme (``flower/utils/broker.py``), answers
``/api/queues/length`` with 404 "broker is not supported".

The fix uses kombu's two alias tables, without touching kombu's own ``redis`` alias:

- ``kombu.transport.TRANSPORT_ALIASES`` gets ``boundary-redis`` / ``boundary-rediss``,
  both resolving to :class:`boundary_celery.shell.transport.Transport`;
- ``kombu.Connection.resolve_aliases`` (the table kombu itself uses to show ``pyamqp`` as
  ``amqp``) displays them as ``redis`` / ``rediss``.

So ``as_uri()`` is ``redis://:**@host:6379/0`` again. Flower then builds its Redis client
from that URL and ``broker_transport_options`` (``priority_steps`` 0, 2, 4, 6, 8 and ``sep``, both
set by ``install()``), so its queue lengths add up every Boundary level.
"""

from __future__ import annotations

from urllib.parse import urlparse

from kombu import Connection
from kombu.transport import TRANSPORT_ALIASES

#: The kombu transport class every Boundary app uses.
TRANSPORT_PATH = "boundary_celery.shell.transport:Transport"

#: Transport alias -> the URL scheme it is shown as (and Flower reads).
ALIASES: dict[str, str] = {
    "boundary-redis": "redis",
    "boundary-rediss": "rediss",
}


def register_transport() -> None:
    """Register the Boundary transport aliases with kombu (idempotent)."""
    for alias, scheme in ALIASES.items():
        TRANSPORT_ALIASES[alias] = TRANSPORT_PATH
        Connection.resolve_aliases[alias] = scheme


def transport_for(url: str) -> str:
    """The ``broker_transport`` name for a Redis broker URL (registers the aliases)."""
    register_transport()
    return "boundary-rediss" if urlparse(url).scheme == "rediss" else "boundary-redis"
