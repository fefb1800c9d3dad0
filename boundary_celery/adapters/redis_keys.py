"""Redis key names, all under one configurable prefix, and the kombu list names.

Broker lists are kombu's own: a queue's most urgent level is the bare queue name and
every other level is ``queue + SEP + step``, one step per Boundary level (0, 2, 4, 6, 8:
Celery integers map onto them in pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

from boundary_celery.core.priority import PRIORITY_STEPS

#: kombu's Redis separator between a queue name and its priority step.
SEP = "\x06\x16"
#: Separator of queue and job type in duration histogram names.
HIST_SEP = "\x1f"
#: kombu's default priority steps: where a producer without boundary-celery puts messages.
LEGACY_STEPS: tuple[int, ...] = (0, 3, 6, 9)


def list_key(queue: str, step: int) -> str:
    """The kombu Redis list holding ``queue``'s messages of priority ``step``."""
    return f"{queue}{SEP}{step}" if step else queue


def list_keys(queue: str) -> list[str]:
    """Every level's list for ``queue``, most urgent first (steps ``PRIORITY_STEPS``)."""
    return [list_key(queue, step) for step in PRIORITY_STEPS]


def legacy_list_keys(queue: str) -> list[str]:
    """``queue``'s lists under kombu's default steps that are not one of ours."""
    return [list_key(queue, step) for step in LEGACY_STEPS if step not in PRIORITY_STEPS]


def queue_of_list(key: str) -> str:
    """The queue name a kombu list key belongs to."""
    return key.rsplit(SEP, 1)[0]


@dataclass(frozen=True)
class Keys:
    """Names of every key boundary-celery writes besides the broker lists."""

    prefix: str = "boundary"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def job_prefix(self) -> str:
        return f"{self.prefix}:job:"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def scheduler_wake(self) -> str:
        """Pub/sub channel announcing a scheduled job due sooner than all others."""
        return f"{self.prefix}:scheduled:wake"

    @property
    def lists_wake(self) -> str:
        """Stream told when a broker list that was empty gets a message (idle workers
        block on it between claims)."""
        return f"{self.prefix}:lists:wake"

    @property
    def replica_fence(self) -> str:
        """Counter written before a ``WAIT`` (``RedisJobStore.await_replicas``)."""
        return f"{self.prefix}:replication:fence"

    @property
    def scheduled_messages(self) -> str:
        return f"{self.prefix}:scheduled:msg"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def queue_stats(self, queue: str) -> str:
        return f"{self.prefix}:stats:{queue}"

    @property
    def duration_index(self) -> str:
        """Set of ``queue + HIST_SEP + job_type`` pairs that have a duration histogram."""
        return f"{self.prefix}:metrics:duration"

    def duration_hist(self, queue: str, job_type: str) -> str:
        """Hash of one pair's histogram: ``b<i>`` bucket counts, ``count``, ``sum_ms``."""
        return f"{self.prefix}:metrics:duration:{queue}{HIST_SEP}{job_type}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def unacked(self) -> str:
        return f"{self.prefix}:unacked"

    @property
    def unacked_index(self) -> str:
        return f"{self.prefix}:unacked_index"

    @property
    def unacked_mutex(self) -> str:
        return f"{self.prefix}:unacked_mutex"
