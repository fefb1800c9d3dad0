"""Structured log lines: the guide's message followed by key=value pairs or one JSON object.

``event("Processing job", job_id=..., job_type=...)`` renders
``Processing job job_id=... job_type=...`` (kv) or
``{"event": "Processing job", "job_id": ...}`` (json), chosen once by :func:`set_format`.
"""

from __future__ import annotations

import json
from typing import Any

_FORMAT = "kv"


def set_format(fmt: str) -> None:
    """Choose ``kv`` or ``json`` rendering for every later event."""
    global _FORMAT
    if fmt not in ("kv", "json"):
        raise ValueError(f"invalid logging.format: {fmt!r} (expected 'kv' or 'json')")
    _FORMAT = fmt


def _kv(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text


def event(message: str, **fields: Any) -> str:
    """One structured log line."""
    if _FORMAT == "json":
        return json.dumps({"event": message, **fields}, default=str)
    pairs = " ".join(f"{k}={_kv(v)}" for k, v in fields.items() if v is not None)
    return f"{message} {pairs}" if pairs else message
