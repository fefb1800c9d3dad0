"""Which of a job's two time limits the pool should arm.

A job has a soft limit (``SoftTimeLimitExceeded`` raised in the handler) and a hard one
(the process is killed). When the hard limit comes first, e.g. an enqueue's ``timeout_ms``
below the job type's ``soft_time_limit``, the soft one can never matter: only the hard one
is armed, so the job ends at its hard limit with ``TimeLimitExceeded``.
"""

from __future__ import annotations


def armed_limits(soft: float | None, hard: float | None) -> tuple[float | None, float | None]:
    """``(soft, hard)`` seconds to arm; ``soft`` is dropped when ``hard`` comes no later."""
    if soft and hard and hard <= soft:
        return None, hard
    return soft, hard
