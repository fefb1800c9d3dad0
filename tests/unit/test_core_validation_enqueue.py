"""Enqueue-request validation (core.validation): every bad value is a JobValidationError
naming its field, and args are measured from the one JSON encoding the check makes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from kombu.utils.json import dumps as kombu_dumps

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.validation import (
    ENQUEUE_OPTIONS,
    JobInput,
    check_args_size,
    check_items,
    check_options,
    check_positive,
    check_time,
    check_uuid,
    encode_json,
)

AWARE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def field_of(**data: Any) -> str:
    with pytest.raises(JobValidationError) as info:
        JobInput.parse({"job_type": "t", **data})
    return info.value.field


@pytest.mark.parametrize(("data", "field"), [
    ({"args": [1, 2]}, "args"),
    ({"args": "abc"}, "args"),
    ({"args": 5}, "args"),
    ({"args": {"a": {1, 2}}}, "args"),
    ({"args": {"a": float("nan")}}, "args"),
    ({"args": {"a": object()}}, "args"),
    ({"args": {1: 2}}, "args"),
    ({"args": {"a": b"x"}}, "args"),
    ({"metadata": [1]}, "metadata"),
    ({"metadata": "x"}, "metadata"),
    ({"priority": 1.5}, "priority"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": 10}, "priority"),
    ({"priority": True}, "priority"),
    ({"queue": 5}, "queue"),
    ({"queue": ""}, "queue"),
    ({"queue": "a b"}, "queue"),
    ({"queue": ["a"]}, "queue"),
    ({"max_retries": "3"}, "max_retries"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 26}, "max_retries"),
    ({"max_retries": 1.0}, "max_retries"),
    ({"tenant_id": 5}, "tenant_id"),
    ({"tenant_id": " "}, "tenant_id"),
    ({"execute_at": datetime(2030, 1, 1)}, "execute_at"),
    ({"execute_at": "2030-01-01T00:00:00"}, "execute_at"),
    ({"execute_at": "tomorrow"}, "execute_at"),
    ({"execute_at": 1_900_000_000}, "execute_at"),
    ({"execute_at": date(2030, 1, 1)}, "execute_at"),
    ({"retry_policy": 5}, "retry_policy"),
    ({"retry_policy": [1]}, "retry_policy"),
    ({"job_type": ["a"]}, "job_type"),
    ({"job_type": None}, "job_type"),
])
def test_every_bad_value_names_its_field(data: dict[str, Any], field: str) -> None:
    assert field_of(**data) == field


@pytest.mark.parametrize("value", [
    AWARE, "2030-01-02T03:04:05+00:00", "2030-01-02T03:04:05Z", " 2030-01-02T03:04:05Z ",
])
def test_execute_at_is_an_aware_datetime_or_an_iso_string_with_an_offset(value: Any) -> None:
    assert JobInput.parse({"job_type": "t", "execute_at": value}).execute_at == AWARE


def test_an_iso_offset_is_kept() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert check_time("execute_at", "2030-01-02T05:04:05+02:00") == AWARE.astimezone(plus2)


def test_check_time_reasons() -> None:
    assert check_time("x", None) is None
    for value, reason in [(datetime(2030, 1, 1), "must be timezone-aware"),
                          ("nope", "expected an ISO 8601 time"),
                          (1.5, "expected a timezone-aware datetime")]:
        with pytest.raises(JobValidationError) as info:
            check_time("x", value)
        assert (info.value.field, info.value.reason) == ("x", reason)


def test_args_may_be_any_mapping_and_are_copied() -> None:
    from types import MappingProxyType

    source = {"a": 1}
    spec = JobInput.parse({"job_type": "t", "args": MappingProxyType(source)})
    assert spec.args == {"a": 1} and type(spec.args) is dict
    source["a"] = 2
    assert spec.args == {"a": 1}


def test_encode_json_measures_what_kombu_sends() -> None:
    args = {"name": "Zoë ☃", "n": [1, 2.5, None, True], "nested": {"k": "v" * 10}}
    data, size = encode_json("args", args)
    assert data == args
    assert size == len(json.dumps(args)) == len(kombu_dumps(args).encode("utf-8"))


def test_args_over_the_limit_name_their_size() -> None:
    args = {"blob": "x" * 100}
    size = encode_json("args", args)[1]
    assert JobInput.parse({"job_type": "t", "args": args}, max_args_bytes=size).args == args
    with pytest.raises(JobValidationError) as info:
        JobInput.parse({"job_type": "t", "args": args}, max_args_bytes=size - 1)
    err = info.value
    assert (err.field, err.value) == ("args", size)
    assert err.reason == f"{size} bytes of JSON, over the max_args_bytes limit of {size - 1}"


def test_no_limit_unless_given() -> None:
    big = {"blob": "x" * 2_000_000}
    assert JobInput.parse({"job_type": "t", "args": big}).args is not big
    check_args_size(10**9, None)


def test_a_parsed_job_input_is_measured_too() -> None:
    spec = JobInput.parse({"job_type": "t", "args": {"blob": "x" * 50}})
    assert JobInput.parse(spec) is spec
    assert JobInput.parse(spec, max_args_bytes=1000) is spec
    with pytest.raises(JobValidationError, match="over the max_args_bytes limit of 10"):
        JobInput.parse(spec, max_args_bytes=10)


def test_check_uuid() -> None:
    job_id = uuid4()
    assert check_uuid("job_id", job_id) is job_id
    assert check_uuid("job_id", str(job_id)) == job_id
    for bad in ("not-a-uuid", 5, None, [1], job_id.bytes):
        with pytest.raises(JobValidationError) as info:
            check_uuid("job_id", bad)
        assert info.value.field == "job_id"
    assert isinstance(check_uuid("x", "12345678123456781234567812345678"), UUID)


def test_enqueue_options_are_the_input_fields_and_job_id() -> None:
    expected = {"priority", "queue", "max_retries", "metadata", "tenant_id", "execute_at",
                "retry_policy", "job_id"}
    assert expected == ENQUEUE_OPTIONS
    check_options({"queue": "q"}, ENQUEUE_OPTIONS)
    with pytest.raises(JobValidationError) as info:
        check_options({"queue": "q", "prority": "high"}, ENQUEUE_OPTIONS)
    assert (info.value.field, info.value.value, info.value.reason) == (
        "prority", "high", "unknown option")
    with pytest.raises(JobValidationError) as info:
        check_options({1: "x"}, ENQUEUE_OPTIONS)
    assert info.value.field == "1"


def test_check_items() -> None:
    allowed = ENQUEUE_OPTIONS | {"job_type", "args"}
    items = ({"job_type": "t"} for _ in range(2))
    assert check_items(items, allowed) == [{"job_type": "t"}, {"job_type": "t"}]
    for bad, field in [(5, "items"), ("ab", "items"), ({"job_type": "t"}, "items"),
                       ([{"job_type": "t"}, None], "items[1]"), ([[1, 2]], "items[0]"),
                       ([{"job_type": "t", "foo": 1}], "foo")]:
        with pytest.raises(JobValidationError) as info:
            check_items(bad, allowed)
        assert info.value.field == field


@pytest.mark.parametrize("value", [0, -1, "5", 1.5, True, None])
def test_check_positive_refuses(value: Any) -> None:
    with pytest.raises(JobValidationError) as info:
        check_positive("batch_size", value)
    assert info.value.field == "batch_size"


def test_check_positive_accepts() -> None:
    assert check_positive("batch_size", 1) == 1
