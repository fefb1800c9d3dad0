"""Schemathesis fuzzes every operation of the served OpenAPI document: no 500, bodies as declared.

The store holds real data (a dead job, a waiting job, a scheduled job), so generated
requests hit both the "found" and the "not found" paths.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from boundary_celery.admin import create_admin_app
from boundary_celery.testing import Sandbox


@pytest.fixture
def admin_schema(sandbox: Sandbox, make_jobs: Callable[..., Any]) -> Any:
    q = sandbox.queue("q")
    _, jobs = make_jobs(admin={"token": "fuzz-token"})
    jobs.enqueue("e2e.record", {"tag": "waiting"}, queue=q, priority="high")
    jobs.schedule("e2e.record", {"tag": "later"}, queue=q,
                  execute_at=datetime.now(UTC) + timedelta(hours=1))
    app = create_admin_app(jobs)
    return schemathesis.openapi.from_asgi("/openapi.json", app,
                                          headers={"Authorization": "Bearer fuzz-token"})


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
AUTH = {"Authorization": "Bearer fuzz-token"}


def test_no_server_error_and_responses_match_the_document(admin_schema: Any) -> None:
    operations = [result.ok() for result in admin_schema.get_all_operations()]
    assert len(operations) == 14  # 12 API routes, /healthz and /readyz
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        fuzz()


def test_invalid_input_never_gives_a_server_error(admin_schema: Any) -> None:
    calls = 0
    for result in admin_schema.get_all_operations():
        operation = result.ok()
        if not any(p.location in ("path", "query") for p in operation.iter_parameters()):
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            nonlocal calls
            response = case.call(headers=AUTH)
            calls += 1
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                case.query, response.text)
            if response.status_code >= 400:
                assert response.json()["error"]

        fuzz()
    assert calls > 50
