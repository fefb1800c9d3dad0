"""The broker messages a worker can be handed, checked in one place.

A worker pops a raw envelope off a queue list (``transport.Channel._brpop_read``) and
hands it to kombu, which builds a message from it; the transport's ``QoS.append`` records
it as unacked and runs the job's ``begin`` (``receipt.begin_hook``); Celery's consumer
strategy then reads the task headers and decodes the body before anything reaches the
pool. An exception on that path is raised in the worker's event loop: the worker stops
and the message, already popped, is lost. So every field read there is checked here
first, and a message that fails is dead-lettered with the reason instead.

What is checked (Celery task protocol 2, JSON only):

- the envelope: UTF-8 JSON (no NaN/Infinity), an object;
- ``properties``: ``delivery_tag`` (str), ``delivery_info`` with ``exchange`` and
  ``routing_key`` (str), ``priority`` (int 0-255, or absent), ``body_encoding``
  (``base64``/``utf-8``, or absent);
- ``content-type`` ``application/json``, ``content-encoding`` a string if present;
- ``headers``: ``task`` and ``id`` (a UUID: every job id is one), ``shadow``,
  ``retries``, ``eta``/``expires`` (ISO 8601), ``timelimit``, ``stamped_headers``/
  ``stamps``, ``compression``; no consumer-only header (``wire.VERDICT``); the
  ``boundary`` header (:func:`boundary_celery.shell.wire.meta_problem`). Other headers
  (``argsrepr``, ``root_id``, ``origin``, custom ones...) are tolerated;
- ``body``: a string that decodes (base64, compression) to JSON ``[args, kwargs, embed]``
  (a list, an object, an object), of at most ``max_body_bytes`` bytes (``[store]
  max_message_bytes``). A compressed body is inflated incrementally and refused as soon
  as it passes the bound, so a small message that would inflate to gigabytes (a
  decompression bomb) never is: only kombu's zlib/gzip, bzip2 and lzma/xz codecs can be
  inflated that way, a body compressed with any other (brotli, zstd, one an app
  registered) is refused.

What is not checked: that the task name is known (Celery's ``on_unknown_task`` handles
it), nor that the arguments fit the handler.

Only messages of queues consumed with acks (task queues) are task messages. Replies
(``celery inspect``, Flower, mingle) and results are read without acks, by clients that
handle their own errors: of those only what kombu reads to build a message is checked.
"""

from __future__ import annotations

import base64
import bz2
import json
import lzma
import math
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from celery.utils.time import maybe_iso8601, maybe_make_aware
from kombu.compression import get_decoder
from kombu.utils import json as kombu_json

from boundary_celery.shell import wire

#: The only content type a worker decodes (``install`` forces JSON).
CONTENT_TYPE: Final = "application/json"

#: Keys of the protocol-2 ``embed`` object (canvas) and the JSON type each must have.
_EMBED: Final = {"callbacks": list, "errbacks": list, "chain": list, "chord": dict}

#: ``[store] max_message_bytes``'s default: the most bytes a task message's body may
#: decode to (after base64 and decompression).
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024


class EnvelopeError(ValueError):
    """A raw broker message that cannot be delivered; ``str(error)`` says why."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: kombu's JSON decoding (its typed values included), refusing NaN and Infinity (a job's
#: fields must be strict JSON); built once (``json.loads`` with options builds one per call).
_DECODER = json.JSONDecoder(object_hook=kombu_json.object_hook, parse_constant=_no_constant)


def _strict_loads(text: str, **_kombu_options: Any) -> Any:
    return _DECODER.decode(text)


def read_envelope(raw: bytes | str, *, task_message: bool = True,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, Any]:
    """The broker message ``raw``, decoded as kombu decodes it, once every field a worker
    reads before the pool runs it was checked; raises :class:`EnvelopeError`.

    A task message's body may decode to at most ``max_body_bytes`` bytes (``[store]
    max_message_bytes``); a compressed one is never inflated past that.
    ``task_message=False`` (a reply or a result, which clients read without acks: no
    ``QoS.append``, no Celery strategy) checks only what kombu reads to build a message.
    """
    if not task_message:
        return _read_kombu_message(raw)
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"message is not UTF-8 text: {exc}") from None
    try:
        payload = kombu_json.loads(raw, _loads=_strict_loads)
    except Exception as exc:
        raise EnvelopeError(f"message is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EnvelopeError(f"message is not a JSON object (got {_kind(payload)})")
    properties = _properties(payload.get("properties"))
    headers = payload.get("headers")
    if not isinstance(headers, dict):
        raise EnvelopeError(f"headers: expected an object, got {_kind(headers)}")
    _check_headers(headers)
    _check_body(payload, properties, headers, max_body_bytes)
    return payload


def envelope_problem(raw: bytes | str, *, task_message: bool = True,
                     max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> str | None:
    """Why ``raw`` cannot be delivered to a worker (see :func:`read_envelope`), or None
    when it can."""
    try:
        read_envelope(raw, task_message=task_message, max_body_bytes=max_body_bytes)
    except EnvelopeError as exc:
        return str(exc)
    return None


def _read_kombu_message(raw: bytes | str) -> dict[str, Any]:
    """What kombu's virtual ``Message`` reads of any message (as leniently as kombu)."""
    try:
        payload = kombu_json.loads(raw.decode(errors="replace") if isinstance(raw, bytes)
                                   else raw)
    except Exception as exc:
        raise EnvelopeError(f"message is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EnvelopeError(f"message is not a JSON object (got {_kind(payload)})")
    properties = _properties(payload.get("properties"))
    headers = payload.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise EnvelopeError(f"headers: expected an object, got {_kind(headers)}")
    body = payload.get("body")
    if body and not isinstance(body, str):
        raise EnvelopeError(f"body: expected a string, got {_kind(body)}")
    if body and properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(body.encode())
        except Exception as exc:
            raise EnvelopeError(f"body: not base64: {exc}") from None
    return payload


def job_type_of(raw: bytes | str) -> str | None:
    """The task name a raw message claims, if any can be read (for the DLQ entry of one
    that cannot be delivered)."""
    return claimed_job(raw)[1]


def claimed_job(raw: bytes | str) -> tuple[str | None, str | None]:
    """The job id (a UUID) and the task name a raw message claims, each None where it
    cannot be read: the DLQ entry of a message that cannot be delivered takes over the
    record its producer wrote."""
    try:
        headers = json.loads(raw)["headers"]
        task, job_id = headers.get("task"), headers.get("id")
    except Exception:
        return None, None
    try:
        job_id = str(uuid.UUID(job_id)) if isinstance(job_id, str) else None
    except ValueError:
        job_id = None
    return job_id, task if isinstance(task, str) and task.strip() else None


def is_connection_error(exc: BaseException, errors: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc`` is one of a transport's connection ``errors`` that means the
    connection failed. kombu's Redis transport also counts ``KeyError`` as one (a stale
    poller fd); raised while a message is delivered, it is the message's doing."""
    return isinstance(exc, errors) and not isinstance(exc, KeyError)


# -- the parts ------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON type name of ``value``, for reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _properties(props: Any) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise EnvelopeError(f"properties: expected an object, got {_kind(props)}")
    tag = props.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        raise EnvelopeError(f"properties.delivery_tag: expected a non-empty string, "
                            f"got {_kind(tag)}")
    info = props.get("delivery_info")
    if not isinstance(info, dict):
        raise EnvelopeError(f"properties.delivery_info: expected an object, got {_kind(info)}")
    for key in ("exchange", "routing_key"):
        if not isinstance(info.get(key), str):
            raise EnvelopeError(f"properties.delivery_info.{key}: expected a string, "
                                f"got {_kind(info.get(key))}")
    priority = props.get("priority")
    if priority is not None and not (_is_int(priority) and 0 <= priority <= 255):
        raise EnvelopeError(f"properties.priority: expected an integer 0-255, "
                            f"got {priority!r}")
    encoding = props.get("body_encoding")
    if encoding and (not isinstance(encoding, str)
                     or (encoding != "base64" and encoding.lower() != "utf-8")):
        raise EnvelopeError(f"properties.body_encoding: expected base64 or utf-8, "
                            f"got {encoding!r}")
    return props


def _check_headers(headers: dict[str, Any]) -> None:
    task = headers.get("task")
    if not isinstance(task, str) or not task.strip():
        raise EnvelopeError(f"headers.task: expected a task name, got {_kind(task)} "
                            "(a Celery protocol 2 task message names its task)")
    task_id = headers.get("id")
    if not isinstance(task_id, str):
        raise EnvelopeError(f"headers.id: expected a string, got {_kind(task_id)}")
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise EnvelopeError(f"headers.id: expected a UUID, got {task_id[:100]!r}") from None
    shadow = headers.get("shadow")
    if shadow is not None and not isinstance(shadow, str):
        raise EnvelopeError(f"headers.shadow: expected a string, got {_kind(shadow)}")
    if "retries" in headers:
        retries = headers["retries"]
        if not (_is_int(retries) and retries >= 0):
            raise EnvelopeError(f"headers.retries: expected an integer >= 0, got {retries!r}")
    for key in ("eta", "expires"):
        _check_time(key, headers.get(key))
    _check_timelimit(headers.get("timelimit"))
    stamped = headers.get("stamped_headers")
    if stamped is not None and not (isinstance(stamped, list)
                                    and all(isinstance(s, str) for s in stamped)):
        raise EnvelopeError("headers.stamped_headers: expected a list of strings")
    stamps = headers.get("stamps")
    if stamps is not None and not isinstance(stamps, dict):
        raise EnvelopeError(f"headers.stamps: expected an object, got {_kind(stamps)}")
    compression = headers.get("compression")
    if compression is not None and not isinstance(compression, str):
        raise EnvelopeError(f"headers.compression: expected a string, got {_kind(compression)}")
    if wire.VERDICT in headers:
        raise EnvelopeError(f"headers.{wire.VERDICT}: set by the receiving worker, "
                            "never published")
    if wire.META in headers:
        problem = wire.meta_problem(headers[wire.META])
        if problem is not None:
            raise EnvelopeError(f"headers.{problem}")


def _check_time(key: str, value: Any) -> None:
    """``eta``/``expires``: None or an ISO 8601 time Celery can convert (it drops a
    message whose ETA it cannot convert, and stops on one it cannot parse)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise EnvelopeError(f"headers.{key}: expected an ISO 8601 string, got {_kind(value)}")
    try:
        moment = maybe_iso8601(value)
        if moment is None:  # "": Celery would then fail on the None it parsed
            raise ValueError("empty")
        maybe_make_aware(moment).astimezone().timestamp()
    except Exception as exc:
        raise EnvelopeError(f"headers.{key}: not a usable ISO 8601 time: {value[:100]!r} "
                            f"({exc})") from None


def _check_timelimit(value: Any) -> None:
    if value is None or value == []:  # Celery ignores an empty limit
        return
    if not isinstance(value, list) or len(value) != 2:
        raise EnvelopeError(f"headers.timelimit: expected [hard, soft], got {value!r:.100}")
    for limit in value:
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, int | float) \
                or not math.isfinite(limit) or limit < 0:
            raise EnvelopeError(f"headers.timelimit: expected seconds >= 0 or null, "
                                f"got {limit!r}")


def _check_body(payload: dict[str, Any], properties: dict[str, Any],
                headers: dict[str, Any], max_bytes: int) -> None:
    content_type = payload.get("content-type")
    if content_type != CONTENT_TYPE:
        raise EnvelopeError(f"content-type: expected {CONTENT_TYPE}, got {content_type!r:.100} "
                            "(workers accept JSON only)")
    content_encoding = payload.get("content-encoding")
    if content_encoding is not None and not isinstance(content_encoding, str):
        raise EnvelopeError(f"content-encoding: expected a string, "
                            f"got {_kind(content_encoding)}")
    body = payload.get("body")
    if not isinstance(body, str):
        raise EnvelopeError(f"body: expected a string, got {_kind(body)}")
    data: bytes | str = body
    if properties.get("body_encoding") == "base64":
        try:
            data = base64.b64decode(body.encode())
        except Exception as exc:
            raise EnvelopeError(f"body: not base64: {exc}") from None
    compression = headers.get("compression")
    if compression:
        if isinstance(data, str):  # kombu decompresses before it encodes a text body
            raise EnvelopeError("body: compressed but not base64-encoded")
        data = _inflate(data, compression, max_bytes)
    elif _size_over(data, max_bytes):
        raise EnvelopeError(f"body: {_size(data)} bytes, {_over(max_bytes)}")
    try:
        decoded = kombu_json.loads(data, _loads=_strict_loads)
    except Exception as exc:
        raise EnvelopeError(f"body: not JSON: {exc!r:.200}") from None
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise EnvelopeError(f"body: expected [args, kwargs, embed] (Celery protocol 2), "
                            f"got {_kind(decoded)}"
                            + (f" of {len(decoded)}" if isinstance(decoded, list) else ""))
    args, kwargs, embed = decoded
    if not isinstance(args, list):
        raise EnvelopeError(f"body: args: expected an array, got {_kind(args)}")
    if not isinstance(kwargs, dict):
        raise EnvelopeError(f"body: kwargs: expected an object, got {_kind(kwargs)}")
    if not isinstance(embed, dict):
        raise EnvelopeError(f"body: embed: expected an object, got {_kind(embed)}")
    for key, kind in _EMBED.items():
        value = embed.get(key)
        if value is not None and not isinstance(value, kind):
            raise EnvelopeError(f"body: embed.{key}: expected "
                                f"{'an array' if kind is list else 'an object'} or null, "
                                f"got {_kind(value)}")


# -- bounded decompression --------------------------------------------------------


def _over(limit: int) -> str:
    return f"over the [store] max_message_bytes limit of {limit} bytes"


def _size(data: bytes | str) -> int:
    """Bytes of ``data`` (a text body: its UTF-8)."""
    return len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))


def _size_over(data: bytes | str, limit: int) -> bool:
    """``_size(data) > limit``, without encoding a text body that cannot be."""
    if isinstance(data, str) and (len(data) > limit or 4 * len(data) <= limit):
        return len(data) > limit  # UTF-8 takes 1 to 4 bytes a character
    return _size(data) > limit


#: Most bytes inflated in one call.
_CHUNK: Final = 256 * 1024


class _TooBig(Exception):
    """More output than the bound allows."""


class _Parts:
    """Output of one inflate, refused (:class:`_TooBig`) once past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []

    def room(self) -> int:
        """The most output to ask for next (one byte past the bound shows it is passed),
        in chunks: a decompressor holds a chunk twice while it makes it."""
        return min(_CHUNK, self.limit + 1 - self.size)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _TooBig
        self.parts.append(chunk)


def _inflate_zlib(data: bytes, out: _Parts) -> None:
    """``zlib.decompress(data)`` (kombu's ``zlib``/``gzip``), at most ``out.room()``
    bytes at a time: one stream, what follows its end ignored."""
    inflater = zlib.decompressobj()
    pending = data
    while True:
        chunk = inflater.decompress(pending, out.room())
        out.add(chunk)
        if inflater.eof:
            return
        pending = inflater.unconsumed_tail
        if not pending and not chunk:  # all read, nothing more to come: cut short
            raise zlib.error("Error -5 while decompressing data: incomplete or truncated "
                             "stream")


def _inflate_streams(data: bytes, out: _Parts, new: Callable[[], Any],
                     bad_stream: type[Exception], cut_short: type[Exception],
                     empty_is_data: bool) -> None:
    """``bz2.decompress``/``lzma.decompress`` (concatenated streams; data after a valid
    stream that is not one is ignored), at most ``out.room()`` bytes at a time."""
    first = True
    while data or not empty_is_data:
        empty_is_data = True
        decompressor = new()
        stream = _Parts(out.limit - out.size)
        try:
            pending = data
            while not decompressor.eof:
                chunk = decompressor.decompress(pending, stream.room())
                pending = b""
                stream.add(chunk)
                if decompressor.needs_input:
                    break
        except bad_stream:
            if first:
                raise
            return  # not a stream: ignored, as the stdlib function does
        if not decompressor.eof:
            raise cut_short("Compressed data ended before the end-of-stream marker was "
                            "reached")
        for chunk in stream.parts:
            out.add(chunk)
        first = False
        data = decompressor.unused_data


def _inflate_bz2(data: bytes, out: _Parts) -> None:
    _inflate_streams(data, out, bz2.BZ2Decompressor, OSError, ValueError, True)


def _inflate_lzma(data: bytes, out: _Parts) -> None:
    _inflate_streams(data, out, lzma.LZMADecompressor, lzma.LZMAError, lzma.LZMAError, False)


#: kombu's registered decoders that can be run with a bound, and how.
_BOUNDED: Final[dict[Any, Callable[[bytes, _Parts], None]]] = {
    zlib.decompress: _inflate_zlib,
    bz2.decompress: _inflate_bz2,
    lzma.decompress: _inflate_lzma,
}


def _inflate(data: bytes, compression: str, limit: int) -> bytes:
    """What kombu's ``decompress(data, compression)`` returns, inflated at most ``limit``
    bytes (plus one) far: past that, or with a codec that cannot be bounded, refused."""
    try:
        inflate = _BOUNDED.get(get_decoder(compression))
    except KeyError:
        raise EnvelopeError(f"body: cannot decompress ({compression!r:.50}): "
                            "unknown compression") from None
    if inflate is None:
        raise EnvelopeError(f"body: compressed with {compression!r:.50}, which a worker "
                            "cannot inflate within [store] max_message_bytes (use zlib, "
                            "bzip2 or lzma)")
    out = _Parts(limit)
    try:
        inflate(data, out)
    except _TooBig:
        raise EnvelopeError(f"body: inflates ({compression!r:.50}) to more than {limit} "
                            f"bytes, {_over(limit)}") from None
    except Exception as exc:
        raise EnvelopeError(f"body: cannot decompress ({compression!r:.50}): "
                            f"{exc!r:.200}") from None
    return b"".join(out.parts)
