"""``jobs_app`` with ``broker_connection_retry_on_startup = False``: a worker that must
fail at once when Redis is not usable at start (as Celery's consumer does)."""

from __future__ import annotations

from tests.e2e.jobs_app import app

app.conf.broker_connection_retry_on_startup = False

__all__ = ["app"]
