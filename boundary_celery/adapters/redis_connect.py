"""Connecting the job store: TLS for a ``rediss://`` Redis (one set of options for the
broker and the store), and the master of a Redis Sentinel group for ``sentinel://``.

redis-py and kombu take the same TLS keywords: kombu's Redis transport passes Celery's
``broker_use_ssl`` dict straight to redis-py's ``SSLConnection`` (``ssl_cert_reqs``,
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, and any other ``ssl_*`` keyword it
knows). So :func:`tls_options` builds that dict once; ``install()`` gives it to Celery as
``broker_use_ssl`` (unless the app set its own, which is then used for both) and the job
store's client gets the same through :func:`client_kwargs`.

An ACL user and password travel in the URL (``rediss://app:secret@host:6380/0``): both
redis-py and kombu read them from there.

A ``sentinel://h1:26379;sentinel://h2:26379/0`` URL is kombu's form for Sentinel: every
sentinel, ``;``-separated; the database, user and password of the master in the URLs.
:func:`connect` gives the store a client of redis-py's ``Sentinel.master_for``, which asks
the sentinels for the master on every new connection, so after a failover it follows
the new master (a connection to a demoted one fails and is made again).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import redis
from redis.sentinel import Sentinel

__all__ = ["client_kwargs", "connect", "is_sentinel", "same_tls", "sentinel_hosts",
           "tls_options", "uses_tls"]

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

#: The keys :func:`same_tls` compares (what decides which server is trusted, and as whom).
_COMPARED = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def uses_tls(url: str) -> bool:
    """True for a ``rediss://`` URL."""
    return urlparse(url).scheme == "rediss"


def tls_options(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    verify: str = "required",
) -> dict[str, Any]:
    """The redis-py / kombu TLS keywords (a ``broker_use_ssl`` dict).

    ``verify`` ``"required"`` checks the server's certificate and host name; ``"none"``
    checks neither (``ssl_check_hostname`` is given explicitly: redis-py 5 defaults to
    not checking the name, redis-py 6+ to checking it, and CERT_NONE with a name check
    is an error in Python's ssl module).
    """
    required = verify == "required"
    options: dict[str, Any] = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED if required else ssl.CERT_NONE,
        "ssl_check_hostname": required,
    }
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    if cert_file:
        options["ssl_certfile"] = cert_file
    if key_file:
        options["ssl_keyfile"] = key_file
    return options


def _cert_reqs(value: Any) -> Any:
    if isinstance(value, str):
        return _CERT_REQS.get(value.strip().lower(), value)
    return ssl.CERT_NONE if value is None else value


def same_tls(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two TLS option dicts trust the same server the same way, as the same client
    (``"required"`` equals ``ssl.CERT_REQUIRED``; unset cert_reqs is redis-py's default,
    required)."""
    for key in _COMPARED:
        left, right = a.get(key), b.get(key)
        if key == "ssl_cert_reqs":
            left = _cert_reqs(left if key in a else "required")
            right = _cert_reqs(right if key in b else "required")
        if left != right:
            return False
    if "ssl_check_hostname" in a and "ssl_check_hostname" in b:
        return bool(a["ssl_check_hostname"]) == bool(b["ssl_check_hostname"])
    return True


def client_kwargs(url: str, tls: Mapping[str, Any] | None) -> dict[str, Any]:
    """The TLS keywords for a redis-py client of ``url``: ``tls`` for a ``rediss://`` URL,
    nothing otherwise (a plain connection takes no ``ssl_*`` keyword)."""
    if not tls or not uses_tls(url):
        return {}
    return dict(tls)


def is_sentinel(url: str) -> bool:
    """True for a ``sentinel://`` URL (one sentinel or a ``;``-separated list)."""
    return url.strip().startswith("sentinel://")


def sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The ``(host, port)`` of every sentinel in ``url`` and the master's connection
    keywords (``db``, ``username``, ``password``: the first URL that names them)."""
    hosts: list[tuple[str, int]] = []
    master: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in url.split(";"))):
        parsed = urlparse(part)
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError(f"not a sentinel URL: {part!r}")
        hosts.append((parsed.hostname, parsed.port or 26379))
        db = parsed.path.strip("/")
        if db and "db" not in master:
            master["db"] = int(db)
        if parsed.password and "password" not in master:
            master["password"] = parsed.password
            if parsed.username:
                master["username"] = parsed.username
    return hosts, master


def connect(url: str, *, tls: Mapping[str, Any] | None = None,
            sentinel_master: str | None = None, **kwargs: Any) -> redis.Redis:
    """``redis.Redis.from_url(url, **kwargs)`` with the TLS options of a ``rediss://`` URL
    (options in the URL's query string, e.g. ``?ssl_cert_reqs=none``, still win); for a
    ``sentinel://`` URL, a client of ``sentinel_master``'s current master (the sentinels
    asked with the same timeouts)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **client_kwargs(url, tls), **kwargs)
    if not sentinel_master:
        raise ValueError("a sentinel:// URL needs the master's name (sentinel_master)")
    hosts, master = sentinel_hosts(url)
    timeouts: dict[str, Any] = {k: kwargs[k] for k in ("socket_timeout",
                                                         "socket_connect_timeout")
                                if k in kwargs}
    sentinel = Sentinel(hosts, sentinel_kwargs=dict(timeouts), **timeouts)
    return sentinel.master_for(sentinel_master, redis_class=redis.Redis,
                               **{**master, **kwargs})
