"""Publishing a retry that Redis cannot take right now, without losing the job.

Celery's ``Task.retry`` publishes the retry and turns any publish error into
``Reject(requeue=False)`` (celery/app/task.py, ``retry``): the message is dropped while
the job's record still reads ``running``. Here the publish is tried again while the
error is a broker outage (the delivery stays held under its lease meanwhile, so no other
worker takes it), for :data:`~boundary_celery.shell.persist.BUDGET_S`. A publish that
cannot succeed (arguments the handler does not take, a value JSON cannot carry) or an
outage past that budget raises ``RetryNotPublishedError``, a failure the core never
retries: the delivery dead-letters the job with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from celery.exceptions import Reject

from boundary_celery.core.errors import RetryNotPublishedError
from boundary_celery.shell.persist import BUDGET_S, TRANSIENT, persisting

T = TypeVar("T")


class _Outage(ConnectionError):
    """A retry publish the broker did not take: a transient error, so ``persisting``
    tries it again (only errors from the publish itself are wrapped)."""


def publish_retry(publish: Callable[[], T]) -> T:
    """``publish()`` (a call of Celery's ``Task.retry``), tried again through a broker
    outage; ``RetryNotPublishedError`` when the retry cannot be published. Whatever else
    ``Task.retry`` raises (``Retry``, the task's exception past ``max_retries``) passes."""

    def attempt() -> T:
        try:
            return publish()
        except Reject as rejected:
            cause = getattr(rejected, "reason", None)
            if getattr(rejected, "requeue", False) or not isinstance(cause, Exception):
                raise  # a Reject of the handler's own, not a failed publish
            if isinstance(cause, TRANSIENT):
                raise _Outage(repr(cause)) from cause
            raise RetryNotPublishedError(
                f"the retry could not be published: {type(cause).__name__}: {cause}"
            ) from cause

    try:
        return persisting(attempt, what="publish a retry")
    except _Outage as outage:
        raise RetryNotPublishedError(
            f"the retry could not be published: the broker did not take it for "
            f"{int(BUDGET_S)} s ({outage})") from outage.__cause__
