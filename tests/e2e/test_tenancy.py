"""The tenant travels with the job; an unknown tenant fails clearly, without retries."""

from __future__ import annotations

from boundary_celery.core.job import JobStatus
from boundary_celery.testing import wait_for


def test_tenant_context_and_unknown_tenant(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q = sandbox.queue()
    worker_factory([q])
    known = jobs.enqueue("e2e.whoami", queue=q, tenant_id="acme", max_retries=3,
                         metadata={"request_id": "r-9"})
    ghost = jobs.enqueue("e2e.whoami", queue=q, tenant_id="ghost", max_retries=3)

    done = wait_for(lambda: (j := jobs.find_job(known)) and j.status is JobStatus.COMPLETED
                    and j, timeout=15)
    assert done.result == {"job_id": known, "tenant": "acme", "attempt": 1,
                           "metadata": {"request_id": "r-9"}}
    dead = wait_for(lambda: (j := jobs.find_job(ghost)) and j.status is JobStatus.FAILED
                    and j, timeout=15)
    assert dead.error.type == "UnknownTenantError" and "ghost" in dead.error.message
    assert dead.retry_count == 1  # failed at once: no retries for an unknown tenant
    assert jobs.store.record(ghost)["attempts"] == "1"
