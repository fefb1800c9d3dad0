"""``shell.installed``: where an app's ``Jobs`` lives, and the error when it is missing."""

from __future__ import annotations

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell.installed import attach, jobs_of


def test_jobs_of_an_app_without_install_names_the_app():
    app = Celery("not-installed-app")
    with pytest.raises(RuntimeError, match=r"install\(app\).*'not-installed-app'"):
        jobs_of(app)


def test_attach_then_jobs_of_round_trip():
    app = Celery("attached-app")
    marker = object()
    attach(app, marker)  # type: ignore[arg-type]
    assert jobs_of(app) is marker
    other = object()
    attach(app, other)  # type: ignore[arg-type]
    assert jobs_of(app) is other


def test_install_attaches_the_jobs_it_returns():
    app = Celery("installed-app")
    jobs = boundary_celery.install(app, BoundarySettings(redis={"url": "redis://127.0.0.1:1/0"}))
    assert jobs_of(app) is jobs
    assert jobs.app is app
    with pytest.raises(RuntimeError, match="'other-app'"):
        jobs_of(Celery("other-app"))
