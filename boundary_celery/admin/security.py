"""The admin server's access rules, as pure functions (no Starlette, no I/O).

- Without a token the admin API may bind a loopback address only, unless told
  ``insecure`` (:func:`bind_refusal`).
- Tokens are compared in constant time (:func:`token_ok`).
- A state-changing request from a browser must come from the page's own origin
  (:func:`same_origin`): the token travels in the ``Authorization`` header, never in a
  cookie, so a cross-site page cannot make a browser send it; refusing foreign origins
  also covers a server that runs without a token on loopback.
- Without a token a request must be addressed to a loopback name (:func:`is_loopback`
  on its ``Host``), so a DNS-rebinding page cannot read the API through the browser.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "SAFE_METHODS",
    "bind_refusal",
    "is_loopback",
    "same_origin",
    "split_host",
    "token_ok",
]

#: Methods that change nothing; every other method needs the same-origin check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (also bracketed or IPv4-mapped)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        addr = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def bind_refusal(host: str, *, token: str | None, insecure: bool) -> str | None:
    """Why serving the admin API on ``host`` is refused, or None when it may be served."""
    if token or insecure or is_loopback(host):
        return None
    return (
        f"refusing to serve the admin API on {host!r} without a token: anyone who can "
        "reach it could retry, cancel and purge jobs and read their arguments. Set a token "
        "(BOUNDARY_ADMIN__TOKEN or [admin] token), bind a loopback address (127.0.0.1, ::1, "
        "localhost), or pass --insecure ([admin] insecure = true) to serve it without "
        "authentication anyway."
    )


def token_ok(given: str | None, accepted: Iterable[str | None]) -> bool:
    """Whether ``given`` equals one of the ``accepted`` tokens, compared in constant time
    (:func:`hmac.compare_digest` against every accepted token, no early exit)."""
    if given is None:
        return False
    raw = given.encode()
    matches = [hmac.compare_digest(raw, tok.encode()) for tok in accepted if tok]
    return any(matches)


def split_host(host_header: str) -> tuple[str, int | None]:
    """``(hostname, port)`` of a ``Host`` header value (``[::1]:8080`` -> ``("::1", 8080)``);
    ``("", None)`` when it cannot be read."""
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return ("", None)


def _origin_key(origin: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return (scheme, parts.hostname.lower(), port)


def same_origin(origin: str, host_header: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a request's ``Origin`` is the server's own (its ``Host``) or one of the
    ``allowed`` origins. Hostnames must match; ports must match unless a side leaves
    the default port out (a TLS proxy in front turns ``https://h`` into ``Host: h``).
    ``null`` and anything unreadable is foreign."""
    key = _origin_key(origin)
    if key is None:
        return False
    if any(key == _origin_key(a) for a in allowed):
        return True
    _, o_host, o_port = key
    h_host, h_port = split_host(host_header)
    if h_port in _DEFAULT_PORTS.values():
        h_port = None
    return bool(h_host) and h_host.lower() == o_host and h_port == o_port
