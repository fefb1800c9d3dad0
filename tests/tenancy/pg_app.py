"""Worker app for the PostgreSQL tenancy test: jobs write into their tenant's schema."""

from __future__ import annotations

import os

from celery import Celery

import boundary_celery
from boundary_celery import boundary_job
from boundary_celery.tenancy import PostgresSchemaTenancy, tenant_connection

app = Celery("pg-tenancy")
jobs = boundary_celery.install(
    app, tenant_hook=PostgresSchemaTenancy(os.environ["BOUNDARY_TEST_PG_DSN"])
)


@boundary_job(name="pg.add_item", max_retries=0)
def add_item(name: str) -> str:
    conn = tenant_connection()
    conn.execute("INSERT INTO items (name) VALUES (%s)", (name,))
    row = conn.execute("SELECT current_schema()").fetchone()
    return str(row[0])
