"""Makes Celery's prefork pool honour a hard time limit that comes before the soft one.

Celery's event-loop pool (``celery.concurrency.asynpool.AsynPool``) arms only the soft
timer when a job has both limits and starts the hard timer when the soft one fires, so a
hard limit earlier than the soft one ends the job at the soft time, and the soft signal
and the kill then race. :func:`arm_hard_first` wraps the pool's ``on_timeout_set`` with
:func:`boundary_celery.core.time_limits.armed_limits`. Other pools are left as they are.
"""

from __future__ import annotations

from typing import Any

from boundary_celery.core.time_limits import armed_limits


def arm_hard_first(task_pool: Any) -> bool:
    """Wrap the event-loop pool's timer set-up once; False for a pool without one.

    Called before the pool registers with the event loop (Celery registers steps in
    reverse order), so the wrap is applied each time the pool creates its handlers,
    including again after a broker reconnect.
    """
    pool: Any = getattr(task_pool, "_pool", None)
    create = getattr(pool, "_create_timelimit_handlers", None)
    if create is None or getattr(create, "_boundary_wrapped", False):
        return False

    def create_timelimit_handlers(hub: Any) -> None:
        create(hub)
        _wrap_timeout_set(pool)

    create_timelimit_handlers._boundary_wrapped = True  # type: ignore[attr-defined]
    pool._create_timelimit_handlers = create_timelimit_handlers
    return True


def _wrap_timeout_set(pool: Any) -> None:
    original = pool.on_timeout_set

    def on_timeout_set(result: Any, soft: float | None, hard: float | None) -> None:
        soft, hard = armed_limits(soft, hard)
        original(result, soft, hard)

    pool.on_timeout_set = on_timeout_set
