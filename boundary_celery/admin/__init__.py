"""The admin HTTP API, dashboard and Prometheus metrics.

``create_admin_app`` / ``serve_admin`` are imported lazily so that a worker importing
:mod:`boundary_celery.admin.metrics` does not load Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boundary_celery.admin.app import create_admin_app, serve_admin
    from boundary_celery.admin.metrics import start_worker_metrics_server

__all__ = ["create_admin_app", "serve_admin", "start_worker_metrics_server"]


def __getattr__(name: str) -> Any:
    if name in ("create_admin_app", "serve_admin"):
        from boundary_celery.admin import app

        return getattr(app, name)
    if name == "start_worker_metrics_server":
        from boundary_celery.admin import metrics

        return getattr(metrics, name)
    raise AttributeError(name)
