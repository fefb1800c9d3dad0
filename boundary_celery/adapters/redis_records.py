"""Mapping between the core ``Job`` and its Redis hash record.

Times are stored as integer epoch milliseconds, structured fields as JSON, and absent
optional fields are not stored at all, which keeps each record a small listpack hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from boundary_celery.core.job import Job

_JSON_FIELDS = ("args", "metadata", "result", "error", "retry_policy")
_TIME_FIELDS = ("created_at", "updated_at", "execute_at", "started_at", "completed_at")


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


def from_ms(value: str | int | float) -> datetime:
    """An aware UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(float(value) / 1000, tz=UTC)


def dumps(value: Any) -> str:
    """Compact JSON; values JSON cannot hold are stored as their repr."""
    return json.dumps(value, separators=(",", ":"), default=repr)


def job_fields(job: Job) -> dict[str, str | int]:
    """The record fields of ``job`` (only those with a value)."""
    data = job.to_dict()
    fields: dict[str, str | int] = {}
    for name, value in data.items():
        if value is None or (name == "metadata" and not value):
            continue
        if name in _TIME_FIELDS:
            fields[name] = to_ms(getattr(job, name))
        elif name in _JSON_FIELDS:
            fields[name] = dumps(value)
        elif name == "id":
            fields[name] = str(value)
        elif name == "tenant_id":
            fields["tenant"] = str(value)
        else:
            fields[name] = value if isinstance(value, int) else str(value)
    return fields


def flatten(fields: Mapping[str, str | int | float]) -> list[str | int | float]:
    """``{"a": 1, "b": 2}`` -> ``["a", 1, "b", 2]`` for HSET argument lists."""
    out: list[str | int | float] = []
    for name, value in fields.items():
        out.append(name)
        out.append(value)
    return out


def record_to_job(record: Mapping[str, str]) -> Job:
    """Rebuild a ``Job`` from its hash record (store-only fields left out: attempts,
    worker, cancel_requested, publish, tag)."""
    data: dict[str, Any] = {}
    for name, raw in record.items():
        if name in _TIME_FIELDS:
            data[name] = from_ms(raw).isoformat()
        elif name in _JSON_FIELDS:
            data[name] = json.loads(raw)
        elif name in ("retry_count", "max_retries"):
            data[name] = int(raw)
        elif name == "duration_ms":
            data[name] = float(raw)
        elif name == "tenant":
            data["tenant_id"] = raw
        elif name in ("attempts", "worker", "cancel_requested", "publish", "tag"):
            continue
        else:
            data[name] = raw
    data.setdefault("args", {})
    data.setdefault("metadata", {})
    return Job.from_dict(data)


def record_extras(record: Mapping[str, str]) -> dict[str, Any]:
    """Record fields that are not part of the core job model (attempts, worker)."""
    return {
        "attempts": int(record.get("attempts", 0)),
        "worker": record.get("worker"),
    }
