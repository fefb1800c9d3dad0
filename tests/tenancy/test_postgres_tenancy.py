"""Tenant jobs run in their PostgreSQL schema (real PostgreSQL, real worker)."""

from __future__ import annotations

import os
import uuid

import pytest

from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for

psycopg = pytest.importorskip("psycopg")
DSN = os.environ.get("BOUNDARY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture
def pg():
    try:
        conn = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {DSN}: {exc}")
    tenants = [f"t{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for t in tenants:
        conn.execute(f"CREATE SCHEMA tenant_{t}")
        conn.execute(f"CREATE TABLE tenant_{t}.items (name text)")
    yield conn, tenants
    for t in tenants:
        conn.execute(f"DROP SCHEMA tenant_{t} CASCADE")
    conn.close()


def test_jobs_write_into_their_tenant_schema(sandbox, make_jobs, worker_factory, pg):
    conn, (acme, globex) = pg
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q], app_module="tests.tenancy.pg_app", env={"BOUNDARY_TEST_PG_DSN": DSN})
    a = jobs.enqueue("pg.add_item", {"name": "anvil"}, queue=q, tenant_id=acme)
    g = jobs.enqueue("pg.add_item", {"name": "gizmo"}, queue=q, tenant_id=globex)
    ghost = jobs.enqueue("pg.add_item", {"name": "boo"}, queue=q, tenant_id="nobody")

    def final(job_id):
        job = jobs.find_job(job_id)
        return job if job and job.status in (JobStatus.COMPLETED, JobStatus.FAILED) else None

    assert wait_for(lambda: final(a), timeout=15).result == f"tenant_{acme}"
    assert wait_for(lambda: final(g), timeout=15).result == f"tenant_{globex}"
    dead = wait_for(lambda: final(ghost), timeout=15)
    assert dead.status is JobStatus.FAILED and dead.error.type == "UnknownTenantError"
    rows = {t: [r[0] for r in conn.execute(f"SELECT name FROM tenant_{t}.items")]
            for t in (acme, globex)}
    assert rows == {acme: ["anvil"], globex: ["gizmo"]}
    public = conn.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_name = 'items'").fetchone()[0]
    assert public == 0  # nothing leaked into public
