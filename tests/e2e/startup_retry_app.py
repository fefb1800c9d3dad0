"""``jobs_app`` with Celery settings from ``E2E_CELERY_CONF`` (a JSON object), e.g.
``{"broker_connection_retry_on_startup": false}``: workers whose start-up retries are
the test's subject."""

from __future__ import annotations

import json
import os

from tests.e2e.jobs_app import app

app.conf.update(json.loads(os.environ.get("E2E_CELERY_CONF", "{}")))

__all__ = ["app"]
