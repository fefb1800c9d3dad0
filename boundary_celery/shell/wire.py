"""The wire format boundary-celery adds to Celery task messages: header names and the
compact ``boundary`` header.

The rest of a job travels in Celery's own fields: the job id is the task id, the job type
the task name, the retry count Celery's ``retries`` header, the priority the message's
``priority`` property (a Celery integer, 0 most urgent; levels map in pairs).

``META`` travels with the message to the worker. ``JOB`` (the job already built by the
publisher, in memory only), ``WRITE`` (the record write built by the store), ``DUE``
and ``PUBLISH`` are read at publish time and stripped before the message is stored.
``VERDICT`` is set by the worker's consumer on receipt, never published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from boundary_celery.core.errors import JobValidationError
from boundary_celery.core.job import Job
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import RetryPolicy
from boundary_celery.core.validation import MAX_TEXT_LEN, check_json

#: Job fields the worker needs: q queue, mr max retries, t tenant id, m metadata,
#: rp retry policy, nh first time no worker had a handler (epoch ms), d fields the
#: publisher only defaulted.
META: Final = "boundary"
#: The :class:`~boundary_celery.core.job.Job` the publisher built (never serialized).
JOB: Final = "x-boundary-job"
#: The record write to store with the message (``RedisJobStore.*_record``).
WRITE: Final = "x-boundary-write"
#: Epoch ms before which the message must not be delivered (goes to the scheduler).
DUE: Final = "x-boundary-due"
#: The publish's token: a publish kombu retries after a lost reply is stored once.
PUBLISH: Final = "x-boundary-publish"
#: The ``begin`` verdict the consumer got for this delivery (see transport.QoS).
VERDICT: Final = "boundary_verdict"
#: When the consumer received this delivery (epoch ms; see transport.QoS).
RECEIVED: Final = "boundary_received"
#: The delivery tag the consumer received this delivery under (see transport.QoS).
TAG: Final = "boundary_tag"
#: Headers read at publish or receipt and never stored with a message (a retry
#: published from a delivery's context would otherwise carry its verdict).
TRANSIENT: Final = frozenset({JOB, WRITE, DUE, PUBLISH, VERDICT, RECEIVED, TAG})


def message_meta(
    job: Job, no_handler_since: int | None = None, defaulted: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``boundary`` header of ``job``'s message.

    ``defaulted`` names fields ("mr", "rp") the publisher only guessed because it does
    not know the job type: the worker's own task definition replaces them.
    """
    meta: dict[str, Any] = {"q": job.queue, "mr": job.max_retries}
    if job.tenant_id is not None:
        meta["t"] = job.tenant_id
    if job.metadata:
        meta["m"] = job.metadata
    if job.retry_policy is not None:
        meta["rp"] = job.retry_policy.model_dump(mode="json")
    if no_handler_since is not None:
        meta["nh"] = no_handler_since
    defaulted = sorted(defaulted)
    if defaulted:
        meta["d"] = defaulted
    return meta


def effective_meta(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """A received ``boundary`` header without the values its publisher only guessed."""
    meta = dict(raw or {})
    for guessed in meta.pop("d", ()):
        meta.pop(guessed, None)
    return meta


# -- checking a received header --------------------------------------------------------


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected an integer >= 0, got {value!r:.100}"
    return None


def _queue(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"expected a queue name, got {value!r:.100}"
    return None


def _tenant(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()
                              or len(value) > MAX_TEXT_LEN):
        return f"expected a tenant id or null, got {value!r:.100}"
    return None


def _metadata(value: Any) -> str | None:
    try:
        check_json("metadata", value)
    except JobValidationError as exc:
        return str(exc)
    return None


def _policy(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return f"expected a retry policy object, got {value!r:.100}"
    try:
        RetryPolicy.from_config(value)
    except (JobValidationError, ValueError, TypeError) as exc:
        return f"not a valid retry policy: {exc}"
    return None


def _defaulted(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"expected a list of field names, got {value!r:.100}"
    return None


def _priority(value: Any) -> str | None:
    try:
        Priority.parse(value)
    except (JobValidationError, ValueError, TypeError) as exc:
        return str(exc)
    return None


#: How each field of the ``boundary`` header is checked on receipt (see
#: :func:`message_meta`); ``p`` and ``rc`` are older publishers' priority and retry count.
_FIELD_CHECKS: Final[dict[str, Callable[[Any], str | None]]] = {
    "q": _queue,
    "mr": _count,
    "t": _tenant,
    "m": _metadata,
    "rp": _policy,
    "nh": _count,
    "d": _defaulted,
    "p": _priority,
    "rc": _count,
}


def meta_problem(meta: Any) -> str | None:
    """Why a received ``boundary`` header cannot be used, as ``boundary[.field]: reason``,
    or None. Fields this version does not know are left alone (a newer publisher's)."""
    if not isinstance(meta, Mapping):
        return f"{META}: expected an object, got {meta!r:.100}"
    for field, check in _FIELD_CHECKS.items():
        if field in meta:
            problem = check(meta[field])
            if problem is not None:
                return f"{META}.{field}: {problem}"
    return None
