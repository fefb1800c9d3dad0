"""Statistics report models and pure helpers."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["JobStatsReport", "QueueStats", "average_duration"]


class QueueStats(BaseModel):
    """Counters and size of one queue."""

    queue_name: str
    size: int = 0
    processed_total: int = 0
    succeeded_total: int = 0
    failed_total: int = 0
    retried_total: int = 0
    avg_duration_ms: float = 0.0
    size_by_priority: dict[str, int] = Field(default_factory=dict)


class JobStatsReport(BaseModel):
    """System-wide counters plus per-queue stats."""

    total_processed: int = 0
    total_succeeded: int = 0
    total_failed: int = 0
    total_retried: int = 0
    active_workers: int = 0
    dlq_size: int = 0
    scheduled_count: int = 0
    scheduler_lag_ms: float = 0.0
    queues: list[QueueStats] = Field(default_factory=list)


def average_duration(total_ms: float, count: int) -> float:
    """Mean duration in ms; 0.0 when nothing was counted."""
    if count <= 0:
        return 0.0
    return float(total_ms) / count


#: Upper bounds (ms) of the job duration histogram's buckets; +Inf is implied.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
)


def duration_bucket(duration_ms: float) -> int:
    """Index of the histogram bucket a duration falls in (``len(DURATION_BUCKETS_MS)`` = +Inf)."""
    value = max(0.0, float(duration_ms))
    for i, bound in enumerate(DURATION_BUCKETS_MS):
        if value <= bound:
            return i
    return len(DURATION_BUCKETS_MS)
