"""Message header names boundary-celery adds to Celery task messages.

``META`` travels with the message to the worker. The other headers are read by the
transport at publish time and stripped before the message is stored.
"""

from typing import Final

#: Job fields the worker needs: q queue, p priority, rc retry count, mr max retries,
#: t tenant id, m metadata, rp retry policy, nh first time no worker had a handler
#: (epoch ms), d fields the publisher only defaulted.
META: Final = "boundary"
#: Record field/value pairs to write with the message (a flat list).
RECORD: Final = "x-boundary-record"
#: Record fields to delete with the message.
CLEAR: Final = "x-boundary-clear"
#: Epoch ms before which the message must not be delivered (goes to the scheduler).
DUE: Final = "x-boundary-due"
#: Queue counter to increment with the message (e.g. "retried").
COUNTER: Final = "x-boundary-count"

TRANSIENT: Final = frozenset({RECORD, CLEAR, DUE, COUNTER})

#: Set by the worker's consumer on receipt (never published): the result of the
#: ``begin`` script run in the same round trip as kombu's unacked bookkeeping.
VERDICT: Final = "boundary_verdict"
