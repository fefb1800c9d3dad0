"""An app whose result backend is the job store (``JobStoreBackend``)."""

from __future__ import annotations

from celery import Celery

import boundary_celery
from boundary_celery import boundary_job

app = Celery("results")
app.conf.result_backend = "boundary_celery.shell.results:JobStoreBackend"
jobs = boundary_celery.install(app)


@app.task(name="results.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="results.total")
def total(numbers: list[int]) -> int:
    return sum(numbers)


@app.task(name="results.fail")
def fail() -> None:
    raise LookupError("nothing here")


@boundary_job(name="results.double", max_retries=0)
def double(x: int) -> int:
    return 2 * x
