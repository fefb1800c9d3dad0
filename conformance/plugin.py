"""pytest plugin: every app Celery's own integration suite builds is installed.

Celery's ``t/integration/conftest.py`` imports its ``celery_app`` and
``celery_session_app`` fixtures into its own namespace, so a plugin cannot replace them;
it wraps their setup instead and calls :func:`boundary_celery.install` on the app each one
yields, as a project adds ``install(app)`` after building its app. Loaded with
``-p conformance.plugin`` by ``python -m conformance``.
"""

from __future__ import annotations

from typing import Any

import pytest

import boundary_celery

#: The fixtures whose app is installed.
APP_FIXTURES = ("celery_app", "celery_session_app")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    app = yield
    if fixturedef.argname in APP_FIXTURES:
        boundary_celery.install(app)
    return app
