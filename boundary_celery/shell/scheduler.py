"""The scheduler: publishes due delayed jobs and retries from the Redis sorted set.

Each pass runs ``move_due.lua``, which moves due messages from the set to their lists
atomically, so any number of schedulers may run and a killed one loses nothing. Between
passes it sleeps until the soonest job is due, at most ``interval_ms``, and wakes early
when a job due sooner is scheduled (the store announces it), so a job is published on
time without polling. It runs embedded in every worker (a bootstep, on by default) and
standalone as ``celery -A app boundary scheduler``; in a worker it beats its heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from boundary_celery.shell.clock import epoch_ms, utcnow
from boundary_celery.shell.logfmt import event

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

log = logging.getLogger("boundary_celery.scheduler")


class SchedulerLoop:
    """Move due jobs when they are due (at least every ``interval_ms``) until stopped;
    optional heartbeat per pass."""

    def __init__(
        self,
        jobs: Jobs,
        *,
        interval_ms: int | None = None,
        heartbeat: Callable[[], None] | None = None,
        schedule: bool = True,
    ) -> None:
        self.jobs = jobs
        self.schedule = schedule  # False: only the heartbeat (scheduler not embedded)
        self.interval_s = (interval_ms or jobs.settings.scheduler.interval_ms) / 1000
        self.heartbeat = heartbeat
        self.stopped = threading.Event()
        self.moved_total = 0
        self._thread: threading.Thread | None = None
        self._wakeups: Any = None

    def run_once(self) -> int:
        """One pass: publish every job due now; returns how many moved."""
        if not self.schedule:
            return 0
        moved = self.jobs.process_scheduled_jobs(utcnow())
        self.moved_total += moved
        if moved:
            log.debug(event("Scheduled jobs published", count=moved))
        return moved

    def run(self, max_passes: int | None = None) -> None:
        """Loop until :meth:`stop` (or ``max_passes``); errors are logged, never fatal."""
        passes = 0
        while not self.stopped.is_set():
            if self.heartbeat is not None:
                try:
                    self.heartbeat()
                except redis.RedisError as exc:  # Redis away: expected, said in one line
                    log.warning(event("Heartbeat failed; retrying next interval",
                                      error=repr(exc)))
                except Exception:  # a missed beat must not hold up due jobs
                    log.exception("heartbeat failed; retrying next interval")
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning(event("Scheduler pass failed; retrying next interval",
                                  error=repr(exc)))
            except Exception:
                log.exception("scheduler pass failed; retrying next interval")
            passes += 1
            if max_passes is not None and passes >= max_passes:
                return
            self._sleep()
        self._close_wakeups()

    def _sleep(self) -> None:
        """Until the soonest job is due (at most the interval), or a sooner one is
        scheduled, or :meth:`stop`. Without the wake channel: a plain timed wait."""
        timeout = self.interval_s
        if not self.schedule:
            self.stopped.wait(timeout)
            return
        try:
            # Subscribed before reading the soonest due time: a sooner job scheduled
            # after that read is announced on the channel, never missed for an interval.
            if self._wakeups is None:
                self._wakeups = self.jobs.store.wakeups()
            due = self.jobs.store.next_due_ms()
            if due is not None:  # +1 ms: move_due takes jobs due at or before now
                timeout = min(timeout, max(0.0, (due - epoch_ms(utcnow()) + 1) / 1000))
            deadline = time.monotonic() + timeout
            while not self.stopped.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or self._wakeups.wait(min(left, 0.5)):
                    return
        except Exception:
            log.warning(event("Scheduler wake channel unavailable; sleeping the interval"),
                        exc_info=log.isEnabledFor(logging.DEBUG))
            self._close_wakeups()
            self.stopped.wait(timeout)

    def _close_wakeups(self) -> None:
        if self._wakeups is not None:
            try:
                self._wakeups.close()
            except Exception:
                log.debug("could not close the wake channel", exc_info=True)
            self._wakeups = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="boundary-scheduler", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end after its pass or wait (up to half a second); no wait."""
        self.stopped.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it (at most ``timeout`` s)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
