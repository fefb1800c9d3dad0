"""``JobStoreBackend``: Celery results read from the job records, with a real worker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery, chain, chord

import boundary_celery
from boundary_celery.shell.results import UNKNOWN, UnknownJobError
from boundary_celery.testing import Sandbox, WorkerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def results(sandbox: Sandbox, worker_factory: Callable[..., WorkerProcess]) -> Any:
    """A publisher app on the job-store backend, and a worker of tests.e2e.results_app."""
    app = Celery(f"results-{sandbox.prefix}")
    app.conf.result_backend = "boundary_celery.shell.results:JobStoreBackend"
    boundary_celery.install(app, sandbox.settings())
    q = sandbox.queue("r")
    worker_factory([q], app_module="tests.e2e.results_app")

    def sig(name: str, *args: Any) -> Any:
        return app.signature(f"results.{name}", args=args, queue=q)

    return SimpleNamespace(app=app, sig=sig)


def test_results_come_from_the_job_records(results: Any) -> None:
    res = results.sig("add", 2, 3).delay()
    assert res.get(timeout=30) == 5 and res.state == "SUCCESS"
    assert results.sig("double", 21).delay().get(timeout=30) == 42
    assert chain(results.sig("add", 1, 1), results.sig("double"))().get(timeout=30) == 4


def test_a_failure_raises_with_the_recorded_error(results: Any) -> None:
    res = results.sig("fail").delay()
    with pytest.raises(Exception) as info:
        res.get(timeout=30)
    assert type(info.value).__name__ == "LookupError" and "nothing here" in str(info.value)
    assert res.state == "FAILURE"


def test_a_chord_is_joined(results: Any) -> None:
    header = [results.sig("add", i, i) for i in range(4)]
    assert chord(header, results.sig("total"))().get(timeout=60) == 12


def test_an_unknown_id_is_unknown_not_pending(results: Any) -> None:
    res = results.app.AsyncResult(str(uuid.uuid4()))
    assert res.state == UNKNOWN
    with pytest.raises(UnknownJobError):
        res.get(timeout=1)
