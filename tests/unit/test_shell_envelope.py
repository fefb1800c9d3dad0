"""``shell.envelope`` and ``wire.meta_problem``: which raw broker messages a worker can be
handed, and why not the others (pure: no Redis, no worker). A body's size is bounded
while it inflates (``[store] max_message_bytes``): a decompression bomb is refused with
memory near the bound, measured with ``tracemalloc``."""

from __future__ import annotations

import base64
import bz2
import copy
import json
import lzma
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pytest
import redis
from kombu import compression as kombu_compression
from kombu.compression import decompress

from boundary_celery.core.job import create_job
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.settings.models import StoreSettings
from boundary_celery.shell import wire
from boundary_celery.shell.envelope import (
    DEFAULT_MAX_BODY_BYTES,
    EnvelopeError,
    envelope_problem,
    is_connection_error,
    job_type_of,
    read_envelope,
)
from boundary_celery.shell.transport import Channel, SentinelChannel

JOB_ID = "714becd8-e46a-4ab9-858a-adeac1546384"


def encode_body(body: Any) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


def envelope(**headers: Any) -> dict[str, Any]:
    """A Celery protocol 2 message as a boundary-celery producer stores it."""
    env: dict[str, Any] = {
        "body": encode_body([[], {"tag": "x"},
                             {"callbacks": None, "errbacks": None, "chain": None,
                              "chord": None}]),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "e2e.record", "id": JOB_ID, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": JOB_ID, "parent_id": None,
            "argsrepr": "()", "kwargsrepr": "{'tag': 'x'}", "origin": "gen1@host",
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
            "boundary": {"q": "q1", "mr": 3, "t": "acme", "m": {"a": 1}, "d": ["mr", "rp"]},
        },
        "properties": {
            "correlation_id": JOB_ID, "reply_to": "38f25252-ca01-3697-b050-7552d32d751c",
            "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "q1"},
            "priority": 4, "body_encoding": "base64",
            "delivery_tag": "e2e73cc0-c9f2-4381-b63d-30709b22b6c8",
        },
    }
    env["headers"].update(headers)
    return env


def problem(env: Any) -> str | None:
    return envelope_problem(json.dumps(env))


def changed(path: str, value: Any) -> dict[str, Any]:
    """The valid envelope with ``path`` (dotted; ``...`` value deletes) replaced."""
    env = envelope()
    *parents, last = path.split(".")
    node = env
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return env


# -- what is delivered --------------------------------------------------------------


def test_a_published_message_is_delivered_as_decoded():
    raw = json.dumps(envelope())
    assert envelope_problem(raw) is None
    assert envelope_problem(raw.encode()) is None
    assert read_envelope(raw) == json.loads(raw)


def test_a_plain_celery_producers_message_is_delivered():
    env = envelope()
    del env["headers"]["boundary"]
    env["properties"]["priority"] = 0
    assert problem(env) is None


@pytest.mark.parametrize(("path", "value"), [
    ("properties.priority", ...),
    ("properties.priority", None),
    ("properties.priority", 255),
    ("content-encoding", ...),
    ("headers.retries", ...),
    ("headers.timelimit", ...),
    ("headers.timelimit", [30, 25.5]),
    ("headers.timelimit", []),
    ("headers.eta", "2031-05-01T10:00:00+00:00"),
    ("headers.expires", "2031-05-01T10:00:00"),
    ("headers.shadow", "alias"),
    ("headers.stamped_headers", ["a"]),
    ("headers.argsrepr", 12),  # tolerated: only logged
    ("headers.custom", {"any": ["thing"]}),
    ("headers.boundary", ...),
    ("headers.boundary", {}),
    ("headers.boundary", {"q": "q1", "mr": 0, "t": None, "nh": 17, "rp": None,
                          "future-field": [1]}),
])
def test_optional_or_tolerated_fields(path, value):
    assert problem(changed(path, value)) is None


def test_a_text_body_and_a_compressed_body_are_delivered():
    text = changed("properties.body_encoding", "utf-8")
    text["body"] = json.dumps([[1], {}, {}])
    assert problem(text) is None
    packed = envelope(compression="application/x-gzip")
    packed["body"] = base64.b64encode(zlib.compress(b'[[1], {}, {}]')).decode()
    assert problem(packed) is None


def test_kombu_typed_values_are_decoded_as_kombu_does():
    env = envelope(when={"__type__": "datetime", "__value__": "2030-01-02T03:04:05"})
    assert read_envelope(json.dumps(env))["headers"]["when"] == datetime(2030, 1, 2, 3, 4, 5)
    unknown = envelope(when={"__type__": "nope", "__value__": 1})
    assert "not JSON" in problem(unknown)


def test_every_header_message_meta_writes_is_accepted():
    job = create_job({"job_type": "t.x", "queue": "q1", "max_retries": 4, "tenant_id": "acme",
                      "metadata": {"k": [1, {"z": None}]},
                      "retry_policy": {"backoff_strategy": "schedule", "schedule": [1, 2]}},
                     uuid.uuid4())
    meta = json.loads(json.dumps(wire.message_meta(job, no_handler_since=1234,
                                                   defaulted=["mr"])))
    assert set(meta) == {"q", "mr", "t", "m", "rp", "nh", "d"}
    assert wire.meta_problem(meta) is None
    assert problem(envelope(boundary=meta)) is None


# -- what is refused, and why --------------------------------------------------------


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"this is not json", "not JSON"),
    (b"", "not JSON"),
    (b'{"properties": NaN}', "NaN is not JSON"),
    (b"[1, 2, 3]", "not a JSON object (got an array)"),
    (b'"a string"', "not a JSON object (got a string)"),
    (b"null", "not a JSON object (got null)"),
])
def test_not_a_json_object(raw, reason):
    assert reason in envelope_problem(raw)


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("properties", ..., "properties: expected an object"),
    ("properties", "x", "properties: expected an object"),
    ("properties.delivery_tag", ..., "properties.delivery_tag: expected a non-empty string"),
    ("properties.delivery_tag", 7, "properties.delivery_tag"),
    ("properties.delivery_tag", "", "properties.delivery_tag"),
    ("properties.delivery_info", ..., "properties.delivery_info: expected an object"),
    ("properties.delivery_info", "q1", "properties.delivery_info: expected an object"),
    ("properties.delivery_info.exchange", ..., "delivery_info.exchange: expected a string"),
    ("properties.delivery_info.exchange", None, "delivery_info.exchange"),
    ("properties.delivery_info.routing_key", ..., "delivery_info.routing_key"),
    ("properties.delivery_info.routing_key", ["q1"], "delivery_info.routing_key"),
    ("properties.priority", "high", "properties.priority: expected an integer 0-255"),
    ("properties.priority", 256, "properties.priority"),
    ("properties.priority", -1, "properties.priority"),
    ("properties.priority", True, "properties.priority"),
    ("properties.priority", 4.5, "properties.priority"),
    ("properties.body_encoding", "rot13", "properties.body_encoding"),
    ("properties.body_encoding", 64, "properties.body_encoding"),
    ("content-type", "application/x-python-serialize", "x-python-serialize"),
    ("content-type", ..., "content-type: expected application/json"),
    ("content-type", "application/data", "content-type"),
    ("content-encoding", 8, "content-encoding: expected a string"),
    ("headers", ..., "headers: expected an object"),
    ("headers", ["task"], "headers: expected an object"),
    ("headers.task", ..., "headers.task: expected a task name"),
    ("headers.task", ["e2e.record"], "headers.task"),
    ("headers.task", " ", "headers.task"),
    ("headers.id", ..., "headers.id: expected a string"),
    ("headers.id", 12, "headers.id: expected a string"),
    ("headers.id", "job-1", "headers.id: expected a UUID"),
    ("headers.shadow", 3, "headers.shadow"),
    ("headers.retries", -1, "headers.retries: expected an integer >= 0"),
    ("headers.retries", "1", "headers.retries"),
    ("headers.retries", None, "headers.retries"),
    ("headers.retries", True, "headers.retries"),
    ("headers.eta", "tomorrow", "headers.eta: not a usable ISO 8601 time"),
    ("headers.eta", 1700000000, "headers.eta: expected an ISO 8601 string"),
    ("headers.eta", "0001-01-01T00:00:00+14:00", "headers.eta"),
    ("headers.expires", "soon", "headers.expires"),
    ("headers.eta", "", "headers.eta"),
    ("headers.expires", "", "headers.expires"),
    ("headers.timelimit", "5", "headers.timelimit: expected [hard, soft]"),
    ("headers.timelimit", [5], "headers.timelimit"),
    ("headers.timelimit", [5, 4, 3], "headers.timelimit"),
    ("headers.timelimit", [5, "x"], "headers.timelimit: expected seconds"),
    ("headers.timelimit", [-1, None], "headers.timelimit"),
    ("headers.timelimit", [True, None], "headers.timelimit"),
    ("headers.stamped_headers", "a", "headers.stamped_headers"),
    ("headers.stamped_headers", [1], "headers.stamped_headers"),
    ("headers.stamps", [], "headers.stamps"),
    ("headers.compression", 1, "headers.compression"),
    ("headers.compression", "application/x-bogus", "body: cannot decompress"),
    ("headers.boundary_verdict", "ok", "headers.boundary_verdict: set by the receiving"),
    ("body", ..., "body: expected a string"),
    ("body", None, "body: expected a string"),
    ("body", [[], {}, {}], "body: expected a string"),
    ("body", "", "body: not JSON"),
    ("body", "!!! not base64 !!!", "body: not base64"),
])
def test_envelope_fields(path, value, reason):
    found = problem(changed(path, value))
    assert found is not None and reason in found, found


@pytest.mark.parametrize(("body", "reason"), [
    ("a json string", "body: expected [args, kwargs, embed] (Celery protocol 2), got a string"),
    ("abc", "got a string"),  # three characters: Celery would unpack it
    ({"args": [], "kwargs": {}}, "got an object"),
    ([[], {}], "got an array of 2"),
    ([[], {}, {}, {}], "got an array of 4"),
    (5, "got a number"),
    (None, "got null"),
    ([{}, {}, {}], "body: args: expected an array"),
    ([[], [], {}], "body: kwargs: expected an object"),
    ([[], {}, []], "body: embed: expected an object"),
    ([[], {}, None], "body: embed: expected an object"),
    ([[], {}, {"callbacks": "x"}], "body: embed.callbacks: expected an array or null"),
    ([[], {}, {"chord": []}], "body: embed.chord: expected an object or null"),
])
def test_body_shape(body, reason):
    env = envelope()
    env["body"] = encode_body(body)
    found = problem(env)
    assert found is not None and reason in found, found


def test_body_bytes_must_be_strict_json():
    env = envelope()
    env["body"] = base64.b64encode(b'[[NaN], {}, {}]').decode()
    assert "body: not JSON" in problem(env)
    env["body"] = base64.b64encode(b"\xff[[], {}, {}]").decode()
    assert "body: not JSON" in problem(env)


def test_a_text_body_cannot_be_compressed():
    env = changed("properties.body_encoding", "utf-8")
    env["body"] = json.dumps([[], {}, {}])
    env["headers"]["compression"] = "application/x-gzip"
    assert "compressed but not base64" in problem(env)


def test_read_envelope_raises_with_the_reason():
    with pytest.raises(EnvelopeError, match=r"headers\.task"):
        read_envelope(json.dumps(changed("headers.task", 5)))


# -- replies and results (read without acks) ---------------------------------------


def reply(**changes: Any) -> dict[str, Any]:
    """A broadcast reply as kombu's mailbox publishes it (not a task message)."""
    env = envelope()
    env["headers"] = {"ticket": "t-1", "clock": 3}
    env["body"] = base64.b64encode(json.dumps({"w1@host": {"ok": "pong"}}).encode()).decode()
    env.update(changes)
    return env


def test_a_reply_is_not_held_to_the_task_message_checks():
    raw = json.dumps(reply())
    assert "headers.task" in envelope_problem(raw)
    assert envelope_problem(raw, task_message=False) is None
    assert envelope_problem(json.dumps(reply(headers=None)), task_message=False) is None
    assert envelope_problem(b'{"properties": NaN}', task_message=False) is not None


@pytest.mark.parametrize(("env", "reason"), [
    ([1], "not a JSON object"),
    (reply(properties=None), "properties: expected an object"),
    (reply(headers=["x"]), "headers: expected an object"),
    (reply(body=5), "body: expected a string"),
    (reply(body="!!! not base64 !!!"), "body: not base64"),
])
def test_what_kombu_reads_of_any_message_is_checked(env, reason):
    found = envelope_problem(json.dumps(env), task_message=False)
    assert found is not None and reason in found, found


# -- the boundary header ---------------------------------------------------------------


@pytest.mark.parametrize(("meta", "reason"), [
    ("abc", "boundary: expected an object"),
    (["q1"], "boundary: expected an object"),
    ({"rc": "abc"}, "boundary.rc: expected an integer >= 0"),
    ({"mr": -1}, "boundary.mr: expected an integer >= 0"),
    ({"mr": "3"}, "boundary.mr"),
    ({"mr": True}, "boundary.mr"),
    ({"q": 5}, "boundary.q: expected a queue name"),
    ({"q": ""}, "boundary.q"),
    ({"t": 5}, "boundary.t: expected a tenant id"),
    ({"t": " "}, "boundary.t"),
    ({"t": "x" * 201}, "boundary.t"),
    ({"m": "x"}, "boundary.m: invalid metadata"),
    ({"m": [1]}, "boundary.m"),
    ({"rp": "fast"}, "boundary.rp: expected a retry policy object"),
    ({"rp": {"initial_delay_ms": "x"}}, "boundary.rp: not a valid retry policy"),
    ({"rp": {"bogus": 1}}, "boundary.rp: not a valid retry policy"),
    ({"nh": "x"}, "boundary.nh"),
    ({"nh": -5}, "boundary.nh"),
    ({"d": "mr"}, "boundary.d: expected a list of field names"),
    ({"d": [["mr"]]}, "boundary.d"),
    ({"p": "urgent"}, "boundary.p: invalid priority"),
    ({"p": [1]}, "boundary.p"),
])
def test_boundary_header_fields(meta, reason):
    found = wire.meta_problem(meta)
    assert found is not None and reason in found, found
    in_envelope = problem(envelope(boundary=meta))
    assert in_envelope == f"headers.{found}"


def test_meta_problem_accepts_what_effective_meta_reads():
    meta = {"q": "q1", "mr": 2, "rp": RetryPolicy(initial_delay_ms=5).model_dump(mode="json"),
            "d": ["rp"], "p": "high", "rc": 1}
    assert wire.meta_problem(meta) is None
    assert wire.effective_meta(meta) == {"q": "q1", "mr": 2, "p": "high", "rc": 1}


# -- helpers ---------------------------------------------------------------------------


def test_job_type_of_a_raw_message():
    assert job_type_of(json.dumps(envelope())) == "e2e.record"
    assert job_type_of(json.dumps(changed("headers.task", 5))) is None
    assert job_type_of(b"\xff") is None
    assert job_type_of("[]") is None


def test_connection_errors_but_not_kombus_key_error():
    errors = (KeyError, OSError, redis.exceptions.ConnectionError)
    assert is_connection_error(redis.exceptions.ConnectionError("gone"), errors)
    assert is_connection_error(ConnectionResetError(), errors)
    assert not is_connection_error(KeyError("exchange"), errors)
    assert not is_connection_error(ValueError("x"), errors)
    assert not is_connection_error(redis.exceptions.ResponseError("x"), errors)


def test_the_valid_envelope_is_not_mutated_by_checking():
    env = envelope()
    before = copy.deepcopy(env)
    problem(env)
    assert env == before


# -- the body's size bound: [store] max_message_bytes (issue 18) -------------------------

MiB = 1 << 20
BOMB_BYTES = 64 * MiB

#: kombu's names for the codecs a worker inflates with a bound, and a streaming
#: compressor of each (kombu's ``gzip`` is zlib's format, as ``zlib.compress`` writes it).
CODECS: dict[str, Callable[[], Any]] = {
    "zlib": zlib.compressobj,
    "gzip": zlib.compressobj,
    "application/x-gzip": zlib.compressobj,
    "bzip2": bz2.BZ2Compressor,
    "application/x-bz2": bz2.BZ2Compressor,
    "lzma": lzma.LZMACompressor,
    "xz": lzma.LZMACompressor,
}


#: Memory a decoder allocates besides its output: liblzma's dictionary, 8 MiB at kombu's
#: preset (``lzma.compress``), which it fills only as far as it writes output.
DICTIONARY = {"lzma": 9 * MiB}


def compressed(codec: str, pieces: Iterable[bytes]) -> bytes:
    packer = CODECS[codec]()
    return b"".join([*(packer.compress(p) for p in pieces), packer.flush()])


def bomb(codec: str) -> bytes:
    """A Celery body ``[["aaa..."], {}, {}]`` of 64 MiB, compressed (a few KB), built
    without holding it whole."""
    return compressed(codec, [b'[["', *([b"a" * MiB] * 64), b'"], {}, {}]'])


def body_of(size: int) -> bytes:
    """A valid Celery body of exactly ``size`` bytes."""
    body = json.dumps([["a" * (size - 14)], {}, {}]).encode()
    assert len(body) == size
    return body


def packed(codec: str, data: bytes) -> str:
    env = envelope(compression=codec)
    env["body"] = base64.b64encode(data).decode()
    return json.dumps(env)


@pytest.fixture(scope="module", params=sorted({"zlib", "bzip2", "lzma"}))
def bomb_codec(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    return request.param, bomb(request.param)


@pytest.mark.parametrize("limit", [MiB, DEFAULT_MAX_BODY_BYTES])
def test_a_decompression_bomb_is_refused_without_inflating_it(bomb_codec, limit):
    """The bomb is refused, naming the bound and the setting, and what checking it
    allocated stays near the bound, far below the 64 MiB it inflates to (kombu's
    ``decompress`` would allocate all of it)."""
    codec, data = bomb_codec
    raw = packed(codec, data)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(EnvelopeError) as refused:
            read_envelope(raw, max_body_bytes=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == (
        f"body: inflates ({codec!r}) to more than {limit} bytes, over the [store] "
        f"max_message_bytes limit of {limit} bytes")
    assert peak < limit + 2 * MiB + DICTIONARY.get(codec, 0) < BOMB_BYTES / 3, peak


def test_the_default_bound_is_the_settings_and_the_transports():
    assert DEFAULT_MAX_BODY_BYTES == 8_388_608
    assert StoreSettings().max_message_bytes == DEFAULT_MAX_BODY_BYTES
    assert Channel.boundary_max_message_bytes == DEFAULT_MAX_BODY_BYTES
    assert "boundary_max_message_bytes" in Channel.from_transport_options
    assert "boundary_max_message_bytes" in SentinelChannel.from_transport_options
    with pytest.raises(ValueError, match="max_message_bytes"):
        StoreSettings(max_message_bytes=0)
    bomb_raw = packed("zlib", bomb("zlib"))
    assert "limit of 8388608 bytes" in (envelope_problem(bomb_raw) or "")


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_body_up_to_the_bound_is_delivered_one_byte_more_is_not(codec):
    size = 100_000
    raw = packed(codec, compressed(codec, [body_of(size)]))
    assert envelope_problem(raw, max_body_bytes=size) is None
    assert envelope_problem(raw, max_body_bytes=size - 1) == (
        f"body: inflates ({codec!r}) to more than {size - 1} bytes, over the [store] "
        f"max_message_bytes limit of {size - 1} bytes")


def test_an_uncompressed_body_is_bounded_too():
    size = 100_000
    env = envelope()
    env["body"] = base64.b64encode(body_of(size)).decode()
    raw = json.dumps(env)
    assert envelope_problem(raw, max_body_bytes=size) is None
    assert envelope_problem(raw, max_body_bytes=size - 1) == (
        f"body: {size} bytes, over the [store] max_message_bytes limit of {size - 1} bytes")


def test_a_text_body_is_bounded_by_its_utf8_bytes():
    text = changed("properties.body_encoding", "utf-8")
    text["body"] = json.dumps([["é" * 1000], {}, {}], ensure_ascii=False)  # 2 bytes each
    size = len(text["body"].encode())
    raw = json.dumps(text)
    assert envelope_problem(raw, max_body_bytes=size) is None
    assert envelope_problem(raw, max_body_bytes=size - 1) == (
        f"body: {size} bytes, over the [store] max_message_bytes limit of {size - 1} bytes")
    assert envelope_problem(raw, max_body_bytes=len(text["body"])) is not None


def _kombu_outcome(data: bytes, codec: str) -> tuple[str, bytes | None]:
    try:
        return "delivered", decompress(data, codec)
    except Exception:
        return "refused", None


def _edge_cases(codec: str) -> list[bytes]:
    body = b"[[1], {}, {}]"
    whole = compressed(codec, [body])
    return [whole, whole + b"trailing junk", whole + compressed(codec, [b"[[2], {}, {}]"]),
            whole + whole + b"x", whole[:-3], whole[: len(whole) // 2], b"", b"junk",
            compressed(codec, [b""])]


@pytest.mark.parametrize("codec", ["zlib", "bzip2", "lzma"])
def test_the_bounded_inflate_reads_what_kombus_decompress_reads(codec):
    """Concatenated streams, data after the end, cut-short or empty input: delivered or
    refused as kombu's ``decompress`` (the stdlib function) would read them, to the same
    body."""
    for data in _edge_cases(codec):
        outcome, body = _kombu_outcome(data, codec)
        raw = packed(codec, data)
        found = envelope_problem(raw)
        if outcome == "delivered" and body is not None and _shape_ok(body):
            assert found is None, (data, found)
            assert base64.b64decode(read_envelope(raw)["body"]) == data
        else:
            assert found is not None and found.startswith("body: "), (data, found)
            if outcome == "refused":
                assert found.startswith(f"body: cannot decompress ({codec!r}): "), found


def _shape_ok(body: bytes) -> bool:
    try:
        decoded = json.loads(body)
    except ValueError:
        return False
    return isinstance(decoded, list) and len(decoded) == 3


def test_a_codec_that_cannot_be_bounded_is_refused_unread(monkeypatch):
    """A codec registered with kombu (brotli, zstd, an app's own) whose decoder cannot be
    stopped at a bound: the message is refused and the decoder never runs."""
    for name in ("_encoders", "_decoders", "_aliases"):
        monkeypatch.setattr(kombu_compression, name, dict(getattr(kombu_compression, name)))
    calls: list[bytes] = []

    def inflate_all(data: bytes) -> bytes:
        calls.append(data)
        return zlib.decompress(data)

    kombu_compression.register(zlib.compress, inflate_all, "application/x-test-unbounded",
                               aliases=["unbounded"])
    raw = packed("unbounded", zlib.compress(b"[[], {}, {}]"))
    assert envelope_problem(raw) == (
        "body: compressed with 'unbounded', which a worker cannot inflate within "
        "[store] max_message_bytes (use zlib, bzip2 or lzma)")
    assert calls == []
