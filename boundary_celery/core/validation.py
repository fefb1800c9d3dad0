"""Field validation for job records and the enqueue request (:class:`JobInput`)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ConfigDict, Field, field_validator

from boundary_celery.core.errors import CoreModel, JobValidationError
from boundary_celery.core.priority import DEFAULT_PRIORITY, Priority
from boundary_celery.core.retry import RetryPolicy, normalise_key

__all__ = [
    "ENQUEUE_OPTIONS",
    "MAX_TEXT_LEN",
    "QUEUE_RE",
    "JobInput",
    "check_args_size",
    "check_aware",
    "check_items",
    "check_json",
    "check_options",
    "check_positive",
    "check_time",
    "check_uuid",
    "encode_json",
    "normalise",
]

MAX_TEXT_LEN = 200
"""Longest job_type, tenant_id or queue name accepted."""

QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
"""What a queue name may consist of."""


def encode_json(field: str, value: Any) -> tuple[dict[str, Any], int]:
    """Like :func:`check_json`, also returning the size in bytes of the object's JSON
    (ASCII-only, as kombu's ``json.dumps`` writes it), from the one encoding the check makes."""
    if not isinstance(value, Mapping):
        raise JobValidationError(field, value, "expected a JSON object (dict)")
    data = dict(value)
    try:
        size = len(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise JobValidationError(field, value, f"not JSON-serialisable: {exc}") from None
    bad_key = _first_non_str_key(data)
    if bad_key is not None:
        raise JobValidationError(field, value, f"keys must be strings, got {bad_key[0]!r}")
    return data, size


def check_json(field: str, value: Any) -> dict[str, Any]:
    """Require a JSON object with string keys (no NaN/inf, no sets, no arbitrary objects)."""
    return encode_json(field, value)[0]


def check_args_size(size: int, limit: int | None) -> None:
    """Refuse JSON-encoded args of ``size`` bytes over ``limit`` (``[store] max_args_bytes``;
    None: no limit)."""
    if limit is not None and size > limit:
        raise JobValidationError(
            "args", size, f"{size} bytes of JSON, over the max_args_bytes limit of {limit}")


def _first_non_str_key(value: Any) -> tuple[object] | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return (key,)
            if (found := _first_non_str_key(item)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            if (found := _first_non_str_key(item)) is not None:
                return found
    return None


def _check_text(field: str, value: Any, *, strip_colon: bool = False) -> str:
    if not isinstance(value, str):
        raise JobValidationError(field, value, "expected a string")
    text = value.strip()
    if strip_colon:
        text = text.removeprefix(":").strip()
    if not text:
        raise JobValidationError(field, value, "must not be empty")
    if len(text) > MAX_TEXT_LEN:
        raise JobValidationError(field, value, f"longer than {MAX_TEXT_LEN} characters")
    return text


def _check_queue(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise JobValidationError("queue", value, "expected a non-empty string")
    if len(value) > MAX_TEXT_LEN or not QUEUE_RE.match(value):
        raise JobValidationError(
            "queue", value, f"expected [A-Za-z0-9_.:-]+, at most {MAX_TEXT_LEN} characters"
        )
    return value


def check_aware(field: str, value: Any) -> Any:
    """Reject a naive datetime; anything else is returned unchanged."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise JobValidationError(field, value, "must be timezone-aware")
    return value


def check_time(field: str, value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime or an ISO 8601 string with an offset
    (None stays None); a naive time, a number or anything else is refused."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise JobValidationError(field, value, "expected an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise JobValidationError(field, value, "expected a timezone-aware datetime")
    result: datetime = check_aware(field, value)
    return result


def check_uuid(field: str, value: Any) -> UUID:
    """A UUID from a UUID or its string form."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise JobValidationError(field, value, "expected a UUID")


def check_options(options: Mapping[Any, Any], allowed: Collection[str]) -> None:
    """Refuse an option name not in ``allowed`` (the error names the option)."""
    for key, value in options.items():
        if key not in allowed:
            raise JobValidationError(str(key), value, "unknown option")


def check_items(items: Any, allowed: Collection[str]) -> list[Mapping[str, Any]]:
    """The items of a bulk enqueue as a list: each a mapping whose keys are in ``allowed``."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise JobValidationError("items", items, "expected an iterable of mappings")
    listed = list(items)
    for index, item in enumerate(listed):
        if not isinstance(item, Mapping):
            raise JobValidationError(f"items[{index}]", item, "expected a mapping")
        check_options(item, allowed)
    return listed


def check_positive(field: str, value: Any) -> int:
    """An integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobValidationError(field, value, "expected an integer >= 1")
    return value


def _check_count(field: str, value: Any, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobValidationError(field, value, "expected an integer")
    if value < 0 or (upper is not None and value > upper):
        bound = f"0..{upper}" if upper is not None else ">= 0"
        raise JobValidationError(field, value, f"expected an integer {bound}")
    return value


def normalise(obj: Mapping[Any, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Map guide keys to field names; unknown or duplicated keys raise JobValidationError."""
    data: dict[str, Any] = {}
    for raw_key, value in obj.items():
        key = normalise_key(raw_key)
        if key not in fields:
            raise JobValidationError(str(raw_key), value, "unknown field")
        if key in data:
            raise JobValidationError(key, value, "given twice")
        data[key] = value
    return data


class JobInput(CoreModel):
    """A validated request to create a job. Build it with :meth:`JobInput.parse`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_type: str
    args: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = DEFAULT_PRIORITY
    queue: str = "default"
    max_retries: int = 3
    metadata: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str | None = None
    execute_at: datetime | None = None
    retry_policy: RetryPolicy | None = None

    @field_validator("job_type", mode="before")
    @classmethod
    def _v_job_type(cls, value: Any) -> str:
        return _check_text("job_type", value, strip_colon=True)

    @field_validator("args", mode="before")
    @classmethod
    def _v_args(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, _SizeLimited):
            data, size = encode_json("args", value.args)
            check_args_size(size, value.max_bytes)
            return data
        return check_json("args", value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _v_metadata(cls, value: Any) -> dict[str, Any]:
        return check_json("metadata", value)

    @field_validator("priority", mode="before")
    @classmethod
    def _v_priority(cls, value: Any) -> Priority:
        return Priority.parse(value)

    @field_validator("queue", mode="before")
    @classmethod
    def _v_queue(cls, value: Any) -> str:
        return _check_queue(value)

    @field_validator("max_retries", mode="before")
    @classmethod
    def _v_max_retries(cls, value: Any) -> int:
        return _check_count("max_retries", value, 25)

    @field_validator("tenant_id", mode="before")
    @classmethod
    def _v_tenant(cls, value: Any) -> str | None:
        return None if value is None else _check_text("tenant_id", value)

    @field_validator("execute_at", mode="before")
    @classmethod
    def _v_execute_at(cls, value: Any) -> datetime | None:
        return check_time("execute_at", value)

    @field_validator("retry_policy", mode="before")
    @classmethod
    def _v_retry_policy(cls, value: Any) -> RetryPolicy | None:
        return None if value is None else RetryPolicy.from_config(value)

    @classmethod
    def parse(cls, obj: JobInput | Mapping[str, Any], *,
              max_args_bytes: int | None = None) -> JobInput:
        """Validate a mapping with snake_case or kebab-case keys (or return a JobInput as
        is); ``args`` whose JSON is over ``max_args_bytes`` bytes are refused."""
        if isinstance(obj, JobInput):
            if max_args_bytes is not None:
                check_args_size(encode_json("args", obj.args)[1], max_args_bytes)
            return obj
        if not isinstance(obj, Mapping):
            raise JobValidationError("job_input", obj, "expected a mapping or JobInput")
        data = normalise(obj, cls.model_fields)
        if max_args_bytes is not None and "args" in data:
            data["args"] = _SizeLimited(data["args"], max_args_bytes)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class _SizeLimited:
    """Args handed to :class:`JobInput`'s validator with their size limit (the size is
    taken from the encoding the JSON check makes anyway)."""

    args: Any
    max_bytes: int


#: The options of an enqueue besides the job type and args (``Jobs.enqueue(**options)``).
ENQUEUE_OPTIONS: frozenset[str] = frozenset(JobInput.model_fields) - {"job_type", "args"} | {
    "job_id"}
