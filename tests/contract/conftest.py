"""The ``ports`` fixture: every implementation of the ports, behind one interface.

- ``memory``: :class:`boundary_celery.adapters.memory.MemoryBackend`.
- ``redis``: a Celery app with :func:`boundary_celery.install` on the test sandbox; the
  queue and registry ports are ``jobs`` itself, the store and stats ports ``jobs.store``.
  No worker runs: ``dequeue_job`` pops the broker message directly.

A test that one implementation is known to fail is marked
``@pytest.mark.deviates(redis="what it does instead")``: that implementation's run of the
test becomes a strict xfail (it must keep failing until fixed), the others run as usual.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from boundary_celery.adapters.memory import MemoryBackend

IMPLEMENTATIONS = ("memory", "redis")


@dataclass
class Ports:
    """One implementation of the four ports, plus helpers."""

    name: str
    queue: Any
    store: Any
    stats: Any
    registry: Any
    new_queue_name: Callable[[str], str] = field(repr=False)
    make_another: Callable[[], Ports] = field(repr=False)

    def queue_name(self, label: str = "q") -> str:
        """A queue name private to this test (cleaned up with the sandbox on Redis)."""
        return self.new_queue_name(label)

    def another(self) -> Ports:
        """A second, separately built instance of the same implementation."""
        return self.make_another()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deviates(**impl_reasons): known deviation of an implementation from the port "
        "contract; that implementation's run is a strict xfail",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("deviates")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        impl = callspec.params.get("ports")
        reason = marker.kwargs.get(impl)
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"{impl}: {reason}"))


def _memory_ports() -> Ports:
    backend = MemoryBackend()
    return Ports(
        name="memory",
        queue=backend.queue,
        store=backend.store,
        stats=backend.stats,
        registry=backend.registry,
        new_queue_name=lambda label: f"{label}-{uuid.uuid4().hex[:8]}",
        make_another=_memory_ports,
    )


def _redis_ports(request: pytest.FixtureRequest) -> Ports:
    sandbox = request.getfixturevalue("sandbox")
    _, jobs = request.getfixturevalue("make_jobs")()
    return Ports(
        name="redis",
        queue=jobs,
        store=jobs.store,
        stats=jobs.store,
        registry=jobs,
        new_queue_name=sandbox.queue,
        make_another=lambda: _redis_ports(request),
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def ports(request: pytest.FixtureRequest) -> Iterator[Ports]:
    """The four ports of one implementation (memory, redis), fresh for each test."""
    if request.param == "memory":
        yield _memory_ports()
    else:
        yield _redis_ports(request)
