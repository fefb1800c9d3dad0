"""Tenant hooks: run each job inside its tenant's context.

``install(app, tenant_hook=PostgresSchemaTenancy(dsn))`` runs every job that carries a
``tenant_id`` with PostgreSQL's ``search_path`` set to that tenant's schema, on one
connection per worker process (``tenant_connection()`` inside the handler). A tenant
without a schema fails the job with ``UnknownTenantError`` instead of running it in the
wrong tenant (or in ``public``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from boundary_celery.core.errors import UnknownTenantError

_SAFE_TENANT = re.compile(r"^[A-Za-z0-9_]{1,48}$")
_connection: ContextVar[Any] = ContextVar("boundary_tenant_connection", default=None)


def tenant_connection() -> Any:
    """The running job's tenant-scoped database connection (None outside a tenant job)."""
    return _connection.get()


def default_schema(tenant_id: str) -> str:
    """``acme-corp`` -> ``tenant_acme_corp``."""
    return "tenant_" + tenant_id.replace("-", "_").lower()


class PostgresSchemaTenancy:
    """A tenant hook setting ``search_path`` to the tenant's schema (psycopg 3)."""

    def __init__(self, dsn: str, *, schema_for: Callable[[str], str] = default_schema) -> None:
        self.dsn = dsn
        self.schema_for = schema_for
        self._conn: Any = None
        self._pid = 0

    def connection(self) -> Any:
        """This process's connection (opened lazily, reopened after a fork or a failure)."""
        import psycopg

        if self._conn is None or self._conn.closed or self._pid != os.getpid():
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            self._pid = os.getpid()
        return self._conn

    @contextmanager
    def __call__(self, tenant_id: str) -> Iterator[Any]:
        from psycopg import sql

        schema = self.schema_for(tenant_id)
        if not _SAFE_TENANT.match(schema):
            raise UnknownTenantError(f"invalid tenant id {tenant_id!r}")
        conn = self.connection()
        row = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
        if row is None:
            raise UnknownTenantError(f"unknown tenant {tenant_id!r} (no schema {schema!r})")
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        token = _connection.set(conn)
        try:
            yield conn
        finally:
            _connection.reset(token)
            conn.execute("RESET search_path")
