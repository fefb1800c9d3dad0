"""boundary-celery: Boundary background-job semantics for Celery on Redis.

Public surface::

    import boundary_celery
    from boundary_celery import boundary_job

    jobs = boundary_celery.install(app)

    @boundary_job(queue="emails", priority="high", max_retries=5)
    def send_email(to: str, subject: str) -> dict: ...
"""

from boundary_celery.core.errors import (
    InvalidTransitionError,
    JobCancelledError,
    JobValidationError,
    NoHandlerError,
    NotReplicatedError,
    PoisonMessageError,
    UnknownTenantError,
)
from boundary_celery.core.job import Job
from boundary_celery.core.outcome import JobResult
from boundary_celery.core.priority import Priority
from boundary_celery.core.retry import BackoffStrategy, RetryPolicy
from boundary_celery.core.status import JobStatus
from boundary_celery.settings import BoundarySettings, load_settings
from boundary_celery.shell.context import JobContext, current_job, current_tenant
from boundary_celery.shell.install import install
from boundary_celery.shell.installed import jobs_of
from boundary_celery.shell.jobs import Jobs
from boundary_celery.shell.revoked import cancel_requested
from boundary_celery.shell.task import BoundaryTask, boundary_job

__all__ = [
    "BackoffStrategy",
    "BoundarySettings",
    "BoundaryTask",
    "InvalidTransitionError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobResult",
    "JobStatus",
    "JobValidationError",
    "Jobs",
    "NoHandlerError",
    "NotReplicatedError",
    "PoisonMessageError",
    "Priority",
    "RetryPolicy",
    "UnknownTenantError",
    "boundary_job",
    "cancel_requested",
    "current_job",
    "current_tenant",
    "install",
    "jobs_of",
    "load_settings",
]
