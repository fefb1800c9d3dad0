"""A runnable boundary-celery app with a few of the guide's jobs.

    REDIS_URL=redis://127.0.0.1:6379/0 celery -A examples.app worker -l info
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

import boundary_celery
from boundary_celery import JobResult, boundary_job, current_job

app = Celery("examples")
app.conf.task_default_queue = "default"  # the guide's default queue (install() keeps it)
jobs = boundary_celery.install(app)


@boundary_job(name="send_email", queue="emails", priority="high", max_retries=5)
def send_email(to: str, subject: str, body: str = "") -> dict[str, Any]:
    """The guide's Pattern 1: send a welcome email."""
    ctx = current_job()
    job_id = ctx.job_id if ctx is not None else "inline"
    return {"sent_to": to, "subject": subject, "message_id": f"msg-{job_id[:8]}"}


@boundary_job(name="process_image", queue="media", priority="normal", max_retries=5)
def process_image(upload_id: str, sizes: list[str]) -> dict[str, Any]:
    """The guide's Pattern 2: generate thumbnails (simulated)."""
    time.sleep(float(os.environ.get("EXAMPLE_IMAGE_SECONDS", "0.05")))
    return {"upload_id": upload_id, "thumbnails": [f"{upload_id}-{s}.jpg" for s in sizes]}


@boundary_job(name="generate_report", queue="reports", priority="low")
def generate_report(report_type: str, user_id: str) -> dict[str, Any]:
    """The guide's Pattern 3: a (scheduled) daily report."""
    return {"report_type": report_type, "user_id": user_id}


@boundary_job(name="export_data", queue="bulk-operations", priority="bulk", max_retries=1)
def export_data(user_id: str, format: str = "csv") -> dict[str, Any]:
    """The guide's Pattern 4: bulk export."""
    return {"user_id": user_id, "format": format, "total_records": 0}


@boundary_job(name="process_payment", max_retries=2,
              retry_policy={"initial_delay_ms": 200, "max_delay_ms": 2000})
def process_payment(order_id: str) -> JobResult:
    """The reference's failing handler: always reports the gateway as down."""
    return JobResult.failure("Payment gateway unavailable", type="GatewayError")


@boundary_job(name="cleanup")
def cleanup() -> None:
    """Queue: the app's default; priority normal."""
