"""The wire format boundary-celery adds to Celery task messages: header names and the
compact ``boundary`` header.

``META`` travels with the message to the worker. ``WRITE`` (the record write built by
the store) and ``DUE`` are read by the transport at publish time and stripped before the
message is stored. ``VERDICT`` is set by the worker's consumer on receipt, never published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from boundary_celery.core.job import Job
from boundary_celery.shell.clock import epoch_ms, utcnow

#: Job fields the worker needs: q queue, p priority, rc retry count, mr max retries,
#: t tenant id, m metadata, rp retry policy, nh first time no worker had a handler
#: (epoch ms), d fields the publisher only defaulted.
META: Final = "boundary"
#: The record write to store with the message (``RedisJobStore.*_record``).
WRITE: Final = "x-boundary-write"
#: Epoch ms before which the message must not be delivered (goes to the scheduler).
DUE: Final = "x-boundary-due"
TRANSIENT: Final = frozenset({WRITE, DUE})
#: The ``begin`` verdict the consumer got for this delivery (see transport.QoS).
VERDICT: Final = "boundary_verdict"


def message_meta(
    job: Job, no_handler_since: int | None = None, defaulted: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``boundary`` header of ``job``'s message.

    ``defaulted`` names fields ("mr", "rp") the publisher only guessed because it does
    not know the job type: the worker's own task definition replaces them.
    """
    meta: dict[str, Any] = {
        "q": job.queue,
        "p": job.priority.value,
        "rc": job.retry_count,
        "mr": job.max_retries,
    }
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


def message_headers(
    job: Job,
    write: Mapping[str, Any],
    *,
    due: datetime | None = None,
    no_handler_since: int | None = None,
    defaulted: Iterable[str] = (),
) -> dict[str, Any]:
    """The boundary headers of ``job``'s message: its meta, the record ``write`` to store
    with it, and its due time (default ``job.execute_at``) when that is in the future."""
    due = due if due is not None else job.execute_at
    headers: dict[str, Any] = {
        META: message_meta(job, no_handler_since, defaulted),
        WRITE: dict(write),
    }
    if due is not None and due > utcnow():
        headers[DUE] = epoch_ms(due)
    return headers
