"""The admin HTTP API, dashboard and Prometheus metrics.

``create_admin_app`` / ``serve_admin`` are imported lazily so that importing this package
does not load Starlette. The Prometheus collector lives in :mod:`boundary_celery.shell.metrics`
(workers serve it too); ``start_worker_metrics_server`` is re-exported from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boundary_celery.admin.app import create_admin_app, serve_admin
    from boundary_celery.shell.metrics import start_worker_metrics_server

__all__ = ["create_admin_app", "serve_admin", "start_worker_metrics_server"]


def __getattr__(name: str) -> Any:
    if name in ("create_admin_app", "serve_admin"):
        from boundary_celery.admin import app

        return getattr(app, name)
    if name == "start_worker_metrics_server":
        from boundary_celery.shell import metrics

        return getattr(metrics, name)
    raise AttributeError(name)
