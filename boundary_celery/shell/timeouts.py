"""Every Redis call on the publish path waits at most ``[redis] timeout_ms``.

By default kombu's Redis sockets have no timeout, so a publish to a Redis that accepts
connections but never answers blocks forever. ``install()`` applies, unless the user
chose a value:

- kombu transport options ``socket_timeout`` and ``socket_connect_timeout``: each broker
  connect and each reply waits at most ``timeout_ms``;
- ``broker_connection_timeout``: opening a publisher connection gives up after
  ``timeout_ms`` in all (Celery's default keeps retrying for 4 s);
- ``task_publish_retry_policy``: one immediate retry, on a new connection (a stale
  pooled connection after a Redis restart still recovers); Celery's default is three;
- ``redis_socket_timeout`` and ``redis_socket_connect_timeout``: Celery's Redis result
  backend, if any (it subscribes to each task's result on ``delay()``).

The bound, T = ``timeout_ms``: with no broker connection open yet, a publish to a broker
that never answers raises after T; with one open, after at most 3 x T + 0.2 s (the
publish times out, then the retry's reconnect tries twice). The error is
:class:`BrokerPublishError`, both Boundary's ``BrokerUnavailableError`` and kombu's
``OperationalError`` (what Celery callers already catch). ``enqueue_many`` does not
retry: T per batch.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery.app.defaults import DEFAULTS
from kombu.exceptions import InconsistencyError, OperationalError
from kombu.transport.redis import get_redis_error_classes
from kombu.utils.url import maybe_sanitize_url

from boundary_celery.core.errors import BrokerUnavailableError

#: Celery's ``task_publish_retry_policy`` (one immediate retry, then give up).
PUBLISH_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
}


class BrokerPublishError(BrokerUnavailableError, OperationalError):
    """A failed publish: a :class:`BrokerUnavailableError` that is also kombu's
    ``OperationalError``, so code catching Celery's publish error keeps working."""


def transport_options(timeout_ms: int) -> dict[str, float]:
    """kombu Redis transport options bounding every broker connect and reply."""
    seconds = timeout_ms / 1000
    return {"socket_timeout": seconds, "socket_connect_timeout": seconds}


def celery_settings(conf: Any, timeout_ms: int) -> dict[str, Any]:
    """The Celery settings bounding publishes (see the module docstring), for those still
    at Celery's defaults in ``conf``."""
    seconds = timeout_ms / 1000
    wanted = {
        "broker_connection_timeout": seconds,
        "task_publish_retry_policy": dict(PUBLISH_RETRY_POLICY),
        "redis_socket_timeout": seconds,
        "redis_socket_connect_timeout": seconds,
    }
    return {key: value for key, value in wanted.items() if conf.get(key) == DEFAULTS.get(key)}


@cache
def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """kombu's error and the Redis transport's connection errors, but not KeyError (which
    says nothing about the broker being reachable)."""
    return (OperationalError, *(e for e in get_redis_error_classes()[0] if e is not KeyError))


def broker_error(conf: Any, exc: BaseException) -> BrokerPublishError | None:
    """The :class:`BrokerPublishError` for a publish that raised ``exc`` (None: ``exc``
    is not a broker failure), naming the broker and its socket timeout."""
    if isinstance(exc, BrokerPublishError):
        return exc
    # InconsistencyError (lost binding keys) is an amqp ConnectionError, not an outage.
    if isinstance(exc, InconsistencyError) or not isinstance(exc, _unavailable_errors()):
        return None
    options = conf.broker_transport_options or {}
    seconds = options.get("socket_timeout")
    timeout_ms = None if seconds is None else round(float(seconds) * 1000)
    broker = maybe_sanitize_url(str(conf.broker_url or "")) or "(no broker_url)"
    return BrokerPublishError(broker, timeout_ms, str(exc) or type(exc).__name__)
