"""The pure core: job model, transitions, priorities, retry policy, outcomes and stats.

No I/O, no clock reads, no randomness of its own, no celery/kombu/redis import.
"""

from boundary_celery.core.errors import (
    InvalidTransitionError,
    JobValidationError,
    NoHandlerError,
    PoisonMessageError,
    UnknownTenantError,
)
from boundary_celery.core.job import (
    EPOCH,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Job,
    JobError,
    JobInput,
    JobResult,
    JobStatus,
    can_retry,
    cancel_job,
    complete_job,
    create_job,
    dead_letter_job,
    fail_job,
    interpret_handler_return,
    prepare_retry,
    schedule_job,
    start_job,
    valid_transition,
)
from boundary_celery.core.outcome import Settlement, error_from_exception, settle
from boundary_celery.core.priority import DEFAULT_PRIORITY, Priority
from boundary_celery.core.retry import BackoffStrategy, RetryPolicy, calculate_retry_delay
from boundary_celery.core.stats import JobStatsReport, QueueStats, average_duration

__all__ = [
    "DEFAULT_PRIORITY",
    "EPOCH",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "BackoffStrategy",
    "InvalidTransitionError",
    "Job",
    "JobError",
    "JobInput",
    "JobResult",
    "JobStatsReport",
    "JobStatus",
    "JobValidationError",
    "NoHandlerError",
    "PoisonMessageError",
    "Priority",
    "QueueStats",
    "RetryPolicy",
    "Settlement",
    "UnknownTenantError",
    "average_duration",
    "calculate_retry_delay",
    "can_retry",
    "cancel_job",
    "complete_job",
    "create_job",
    "dead_letter_job",
    "error_from_exception",
    "fail_job",
    "interpret_handler_return",
    "prepare_retry",
    "schedule_job",
    "settle",
    "start_job",
    "valid_transition",
]
