"""``BoundaryConsumer``'s hooks when handling a message fails: a lost connection requeues
it; anything else dead-letters it (raised to the transport, which dead-letters the raw
message, when dead-lettering here fails), never a requeue that fails again at once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis

from boundary_celery.shell import consumer
from boundary_celery.shell.consumer import BoundaryConsumer

# kombu's Redis connection errors (5.7 counts KeyError as one)
CONNECTION_ERRORS = (KeyError, OSError, redis.exceptions.ConnectionError)


class Message:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def ack(self) -> None:
        self.calls.append("ack")

    def reject_log_error(self, logger: Any, errors: Any, requeue: bool = False) -> None:
        self.calls.append(f"reject(requeue={requeue})")


def hooks() -> Any:
    stub = SimpleNamespace(app=object(), connection_errors=CONNECTION_ERRORS)
    stub._dead_letter = lambda message, reason: BoundaryConsumer._dead_letter(
        stub, message, reason)
    return stub


def failing(exc: Exception) -> Any:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    return fail


def test_a_dead_lettered_message_is_acked(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(consumer, "dead_letter_message",
                        lambda app, message, reason, kind: seen.append(reason))
    message = Message()
    BoundaryConsumer.on_invalid_task(hooks(), None, message, ValueError("bad eta"))
    assert seen == ["invalid task message: bad eta"]
    assert message.calls == ["ack"]


def test_dead_lettering_on_a_lost_connection_requeues(monkeypatch):
    monkeypatch.setattr(consumer, "dead_letter_message",
                        failing(redis.exceptions.ConnectionError("gone")))
    message = Message()
    BoundaryConsumer._dead_letter(hooks(), message, "why")
    assert message.calls == ["reject(requeue=True)"]


@pytest.mark.parametrize("error", [TypeError("not JSON serializable"), KeyError("id")])
def test_dead_lettering_failing_otherwise_is_raised_to_the_transport(monkeypatch, error):
    monkeypatch.setattr(consumer, "dead_letter_message", failing(error))
    message = Message()
    with pytest.raises(type(error)):
        BoundaryConsumer._dead_letter(hooks(), message, "why")
    assert message.calls == []  # never requeued: the transport dead-letters it


def test_an_unknown_job_type_that_cannot_be_rescheduled_is_dead_lettered(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(consumer, "jobs_of", lambda app: None)
    monkeypatch.setattr(consumer, "handle_unknown_job_type",
                        failing(TypeError("Object of type datetime is not JSON serializable")))
    monkeypatch.setattr(consumer, "dead_letter_message",
                        lambda app, message, reason, kind: seen.append(reason))
    message = Message()
    BoundaryConsumer.on_unknown_task(hooks(), None, message, KeyError("t.gone"))
    assert message.calls == ["ack"]
    [reason] = seen
    assert reason.startswith("no handler for job type 't.gone', and re-scheduling the "
                             "message failed: TypeError(")


def test_an_unknown_job_type_on_a_lost_connection_is_requeued(monkeypatch):
    monkeypatch.setattr(consumer, "jobs_of", lambda app: None)
    monkeypatch.setattr(consumer, "handle_unknown_job_type",
                        failing(redis.exceptions.ConnectionError("gone")))
    message = Message()
    BoundaryConsumer.on_unknown_task(hooks(), None, message, KeyError("t.gone"))
    assert message.calls == ["reject(requeue=True)"]
