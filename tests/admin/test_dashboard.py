"""The dashboard in headless Chromium (Debian's, driven by Playwright), served by uvicorn.

It must show the queues and the DLQ, and clicking Retry on a dead job must make that
job run (checked in the store). The screenshot goes to a temporary folder, or to
docs/dashboard.png (the README's) when BOUNDARY_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from boundary_celery.admin import create_admin_app
from boundary_celery.testing import Sandbox, wait_for

CHROMIUM = os.environ.get("BOUNDARY_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (scripts/ensure_chromium.sh)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Run an ASGI app with uvicorn in a thread; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_for(lambda: server.started, 10, message="uvicorn started")
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.e2e
def test_dashboard_shows_queues_and_dlq_and_retry_runs_the_job(
    tmp_path: Path,
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any],
    serve: Callable[[Any], str], browser: Any,
) -> None:
    q, idle = sandbox.queue("emails"), sandbox.queue("reports")
    _, jobs = make_jobs()
    worker_factory([q])
    for i in range(5):
        jobs.enqueue("e2e.record", {"tag": f"d{i}"}, queue=q)
    dead = jobs.enqueue("e2e.flaky", {"key": "dash", "failures": 1}, queue=q, max_retries=0)
    other = jobs.enqueue("e2e.always_fail", {"key": "dash2"}, queue=q, max_retries=0)
    wait_for(lambda: jobs.dlq_size() == 2 and jobs.queue_stats(q).processed_total == 7, 15,
             message="5 done, 2 dead")
    for level in ("critical", "high", "normal", "normal", "bulk"):
        jobs.enqueue("e2e.record", {"tag": level}, queue=idle, priority=level)
    jobs.schedule("e2e.record", {"tag": "later"}, queue=idle,
                  execute_at=datetime.now(UTC) + timedelta(hours=2))
    base = serve(create_admin_app(jobs))

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/dashboard")
    # Queues: one row each, with depths per level.
    idle_row = page.locator(f'#queues-table tr[data-queue="{idle}"]')
    idle_row.wait_for(timeout=10_000)
    assert idle_row.locator("td.size").inner_text() == "5"
    cells = idle_row.locator("td").all_inner_texts()
    assert cells[2:7] == ["1", "1", "2", "0", "1"]  # critical high normal low bulk
    assert page.locator(f'#queues-table tr[data-queue="{q}"]').count() == 1
    assert page.locator("#m-succeeded").inner_text() == "5"
    assert page.locator("#m-dlq").inner_text() == "2"
    # The DLQ with each job's error, and the scheduled job.
    dead_row = page.locator(f'#dlq-table tr[data-job-id="{dead}"]')
    dead_row.wait_for(timeout=10_000)
    assert "RuntimeError: transient failure 1" in dead_row.inner_text()
    assert "ValueError: boom dash2" in page.locator(
        f'#dlq-table tr[data-job-id="{other}"]').inner_text()
    page.locator("#scheduled-table").get_by_text("e2e.record").wait_for(timeout=10_000)
    # A job's detail.
    dead_row.locator(".id").click()
    page.wait_for_function(
        "document.getElementById('job-detail').textContent.includes('e2e.flaky')",
        timeout=10_000)
    shot = (DOCS_SCREENSHOT if os.environ.get("BOUNDARY_UPDATE_SCREENSHOT") == "1"
            else tmp_path / "dashboard.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    dead_row.get_by_role("button", name="Retry").click()
    def completed() -> Any:
        job = jobs.find_job(dead)
        return job if job is not None and job.status.value == "completed" else None

    done = wait_for(completed, 10, message="retried job ran")
    assert done.result == {"attempts": 2}
    # The page refreshes itself: the row leaves the DLQ table.
    page.locator(f'#dlq-table tr[data-job-id="{dead}"]').wait_for(state="detached", timeout=10_000)
    assert jobs.dlq_size() == 1


def test_dashboard_asks_for_the_token_and_keeps_it(
    sandbox: Sandbox, make_jobs: Callable[..., Any], serve: Callable[[Any], str], browser: Any,
) -> None:
    q = sandbox.queue("q")
    _, jobs = make_jobs(admin={"token": "dash-secret"})
    jobs.enqueue("e2e.record", {"tag": "x"}, queue=q)
    base = serve(create_admin_app(jobs))
    page = browser.new_page()
    page.goto(f"{base}/dashboard")
    page.get_by_text("unauthorized").wait_for(timeout=10_000)
    page.fill("#token", "dash-secret")
    page.click("#save-token")
    page.locator(f'#queues-table tr[data-queue="{q}"]').wait_for(timeout=10_000)
    page.reload()  # kept in localStorage
    page.locator(f'#queues-table tr[data-queue="{q}"]').wait_for(timeout=10_000)


@pytest.mark.e2e
def test_dashboard_cancel_buttons_cancel_scheduled_waiting_and_running_jobs(
    sandbox: Sandbox, make_jobs: Callable[..., Any], worker_factory: Callable[..., Any],
    serve: Callable[[Any], str], browser: Any,
) -> None:
    q, idle = sandbox.queue("work"), sandbox.queue("idle")
    _, jobs = make_jobs()
    worker_factory([q], "tests.e2e.cancel_app")
    later = jobs.schedule("cancel.record", {"tag": "later"}, queue=idle,
                          execute_at=datetime.now(UTC) + timedelta(hours=2))
    waiting = jobs.enqueue("cancel.record", {"tag": "waiting"}, queue=idle)
    running = jobs.enqueue("cancel.cooperative", {"key": "dash", "seconds": 60}, queue=q)
    r = sandbox.redis
    wait_for(lambda: r.llen(f"{sandbox.prefix}:started:dash") == 1, 15, message="job running")
    base = serve(create_admin_app(jobs))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/dashboard")

    def status(job_id: str) -> str:
        job = jobs.find_job(job_id)
        return job.status.value if job is not None else "-"

    # A scheduled job: Cancel in its row; the row leaves the table.
    row = page.locator(f'#scheduled-table tr[data-job-id="{later}"]')
    row.get_by_role("button", name="Cancel").click()
    wait_for(lambda: status(later) == "cancelled", 10, message="scheduled job cancelled")
    row.wait_for(state="detached", timeout=10_000)

    def cancel_from_detail(job_id: str) -> None:
        page.fill("#job-id", job_id)
        page.click("#show-job")
        page.locator("#job-actions").get_by_role("button", name="Cancel").click()

    # A waiting job, from its detail: cancelled, and the detail shows it without a button.
    cancel_from_detail(waiting)
    wait_for(lambda: status(waiting) == "cancelled", 10, message="waiting job cancelled")
    page.wait_for_function(
        "document.getElementById('job-detail').textContent.includes('\"cancelled\"')",
        timeout=10_000)
    page.locator("#job-actions button.cancel").wait_for(state="detached", timeout=10_000)
    # A running job: its cancellation is requested and its handler stops.
    cancel_from_detail(running)
    wait_for(lambda: r.llen(f"{sandbox.prefix}:seen:dash") == 1, 10,
             message="the handler saw cancel_requested()")
    assert r.llen(f"{sandbox.prefix}:ran") == 0  # neither cancelled record job ran
