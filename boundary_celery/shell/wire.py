"""The wire format boundary-celery adds to Celery task messages: header names and the
compact ``boundary`` header.

The rest of a job travels in Celery's own fields: the job id is the task id, the job type
the task name, the retry count Celery's ``retries`` header, the priority the message's
``priority`` property (a Celery integer, 0 most urgent; levels map in pairs).

``META`` travels with the message to the worker. ``JOB`` (the job already built by the
publisher, in memory only), ``WRITE`` (the record write built by the store) and ``DUE``
are read at publish time and stripped before the message is stored. ``VERDICT`` is set
by the worker's consumer on receipt, never published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from boundary_celery.core.job import Job

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
TRANSIENT: Final = frozenset({JOB, WRITE, DUE})
#: The ``begin`` verdict the consumer got for this delivery (see transport.QoS).
VERDICT: Final = "boundary_verdict"


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
