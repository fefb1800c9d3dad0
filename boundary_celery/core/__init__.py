"""The pure core: job model, transitions, priorities, retry policy, outcomes and stats.

No I/O, no clock reads, no randomness of its own, no celery/kombu/redis import.
"""

from boundary_celery.core.delivery import (
    DELIVERY_OK,
    DELIVERY_STALE,
    SKIP_DELIVERY_STATUS_VALUES,
    delivery_verdict,
)
from boundary_celery.core.errors import (
    InvalidTransitionError,
    JobCancelledError,
    JobValidationError,
    NoHandlerError,
    PoisonMessageError,
    UnknownTenantError,
)
from boundary_celery.core.job import (
    EPOCH,
    Job,
    JobError,
    can_retry,
    cancel_job,
    complete_job,
    create_job,
    dead_letter_job,
    fail_job,
    prepare_retry,
    schedule_job,
    start_job,
)
from boundary_celery.core.outcome import (
    NON_RETRYABLE_ERRORS,
    JobResult,
    Settlement,
    error_from_exception,
    interpret_handler_return,
    is_retryable,
    settle,
)
from boundary_celery.core.priority import DEFAULT_PRIORITY, Priority
from boundary_celery.core.retry import BackoffStrategy, RetryPolicy, calculate_retry_delay
from boundary_celery.core.stats import JobStatsReport, QueueStats, average_duration
from boundary_celery.core.status import (
    CANCEL_NOW_STATUSES,
    CANCEL_REQUEST_STATUSES,
    SKIP_DELIVERY_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    CancelAction,
    JobStatus,
    cancel_action,
    cancel_rule,
    valid_transition,
)
from boundary_celery.core.validation import JobInput

__all__ = [
    "CANCEL_NOW_STATUSES",
    "CANCEL_REQUEST_STATUSES",
    "DEFAULT_PRIORITY",
    "DELIVERY_OK",
    "DELIVERY_STALE",
    "EPOCH",
    "NON_RETRYABLE_ERRORS",
    "SKIP_DELIVERY_STATUSES",
    "SKIP_DELIVERY_STATUS_VALUES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "BackoffStrategy",
    "CancelAction",
    "InvalidTransitionError",
    "Job",
    "JobCancelledError",
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
    "cancel_action",
    "cancel_job",
    "cancel_rule",
    "complete_job",
    "create_job",
    "dead_letter_job",
    "delivery_verdict",
    "error_from_exception",
    "fail_job",
    "interpret_handler_return",
    "is_retryable",
    "prepare_retry",
    "schedule_job",
    "settle",
    "start_job",
    "valid_transition",
]
