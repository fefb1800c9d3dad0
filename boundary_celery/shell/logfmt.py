"""Structured log lines: the guide's message followed by key=value pairs or one JSON object.

``event("Processing job", job_id=..., job_type=...)`` renders
``Processing job job_id=... job_type=...`` (kv) or
``{"event": "Processing job", "job_id": ...}`` (json), chosen once by :func:`set_format`
(``install()`` calls it with ``settings.logging.format``).

With ``json``, every line a worker writes is one JSON object: :class:`JsonFormatter` is put
on the handlers Celery sets up for the root and task loggers (``after_setup_logger`` and
``after_setup_task_logger`` signals), so Celery's own lines ("Connected to ...",
"... ready.") become ``{"message": ...}`` objects and :func:`event` lines keep their fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from celery import signals

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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, process, then the message or event.

    A message that is itself an :func:`event` JSON object is merged in (its ``event`` and
    fields become top-level keys); any other message goes under ``message``. A record
    logged inside a task gets ``task_id`` and ``task_name``; an exception becomes ``exc``.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
        }
        text = record.getMessage()
        parsed: Any = None
        if text.startswith("{") and text.endswith("}"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and "event" in parsed:
            out.update(parsed)
        else:
            out["message"] = text
        task = _current_task()
        if task is not None:
            out.setdefault("task_id", task.request.id)
            out.setdefault("task_name", task.name)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def _current_task() -> Any:
    try:
        from celery._state import get_current_task

        task = get_current_task()
    except Exception:
        return None
    if task is None or getattr(task.request, "id", None) is None:
        return None
    return task


def use_json_formatter(logger: logging.Logger) -> None:
    """Put :class:`JsonFormatter` on every handler of ``logger``."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())


@signals.after_setup_logger.connect(weak=False)
@signals.after_setup_task_logger.connect(weak=False)
def _on_setup_logger(sender: Any = None, logger: logging.Logger | None = None,
                     **_: Any) -> None:
    if _FORMAT == "json" and logger is not None:
        use_json_formatter(logger)


# -- the worker's own outcome counts for "Worker stopped" ------------------------------
#
# Counted in the worker's main process (BoundaryRequest's failure/retry hooks; Celery
# calls them there for every pool). Successes are the accepted total minus the rest,
# because Celery's generated Request class handles success without an overridable hook.

_OUTCOMES = ("failed", "retried", "skipped")
_tally: dict[str, int] = dict.fromkeys(_OUTCOMES, 0)


def count(outcome: str) -> None:
    """Add one ``failed``/``retried``/``skipped`` attempt (worker main process)."""
    _tally[outcome] += 1


def tally() -> dict[str, int]:
    """Attempts this worker ran: processed (= succeeded + failed + retried) and each outcome."""
    from celery.worker import state

    accepted = sum(state.total_count.values())
    succeeded = max(0, accepted - sum(_tally.values()))
    return {
        "processed": succeeded + _tally["failed"] + _tally["retried"],
        "succeeded": succeeded,
        "failed": _tally["failed"],
        "retried": _tally["retried"],
    }
