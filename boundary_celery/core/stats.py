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
