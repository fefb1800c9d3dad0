"""What ``install(app)`` does with each Celery setting it needs: one table, no surprises.

A setting the user left at Celery's default gets the value Boundary needs (and the
change is logged). A value the user chose is kept, with a warning when it weakens a
guarantee, or refused with :class:`ConfigConflict` naming the setting when Boundary
cannot work with it (pickle, a non-JSON serializer, a kombu transport option that changes
key names or the fetch: :data:`REFUSED_TRANSPORT_OPTIONS`). The broker wiring (transport,
consumer, priority lists and key names) is boundary-celery's; a user value there is
replaced with a warning. ``celery boundary doctor`` shows the same notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.app.defaults import DEFAULTS

from boundary_celery.settings import BoundarySettings


class ConfigConflict(ValueError):
    """A Celery setting the user chose that boundary-celery cannot work with."""

    def __init__(self, setting: str, value: Any, reason: str) -> None:
        super().__init__(f"{setting}={value!r}: {reason}")
        self.setting = setting
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class ConfNote:
    """What install() did with one setting: ``set`` (it was Celery's default), ``kept``
    (the user's value, ``warning`` saying what it costs) or ``replaced`` (broker wiring
    boundary-celery must own; ``warning`` says so)."""

    setting: str
    action: str
    value: Any
    previous: Any = None
    warning: str | None = None


@dataclass(frozen=True)
class Rule:
    """One row of the table: the value Boundary wants, and what a user's value means."""

    setting: str
    wanted: Callable[[BoundarySettings], Any]
    #: ``check(user_value) -> None`` (fine), ``"warn: ..."`` (keep and warn) or
    #: ``"error: ..."`` (refuse).
    check: Callable[[Any], str | None]


def _json_only(value: Any) -> str | None:
    if value != "json":
        return "error: boundary-celery messages and results are JSON only"
    return None


def _accepts_json(value: Any) -> str | None:
    kinds = {str(v).split("/")[-1] for v in (value or ())}
    if "pickle" in kinds or "x-python-serialize" in kinds:
        return "error: pickle is never accepted (a message could run code)"
    if "json" not in kinds:
        return "error: JSON must be accepted (every boundary message is JSON)"
    if kinds != {"json"}:
        return "warn: formats besides JSON are accepted; boundary publishes JSON only"
    return None


def _must_be_true(reason: str) -> Callable[[Any], str | None]:
    return lambda value: None if value else f"warn: {reason}"


def _prefetch(value: Any) -> str | None:
    if value is not None and int(value) > 1:
        return ("warn: a worker holds several messages at once, so a more urgent job can "
                "wait behind ones it already took (strict priority needs 1)")
    return None


def _any(value: Any) -> str | None:
    return None


RULES: tuple[Rule, ...] = (
    Rule("task_serializer", lambda s: "json", _json_only),
    Rule("result_serializer", lambda s: "json", _json_only),
    Rule("accept_content", lambda s: ["json"], _accepts_json),
    Rule("result_accept_content", lambda s: ["json"], _accepts_json),
    Rule("task_acks_late", lambda s: True,
         _must_be_true("a job is acknowledged before it runs: a crash loses it")),
    Rule("task_acks_on_failure_or_timeout", lambda s: True,
         _must_be_true("a failed job's message is not acknowledged")),
    # Celery 5.7 splits task_acks_on_failure_or_timeout; on older Celery these are absent.
    Rule("task_acks_on_failure", lambda s: None,
         _must_be_true("a failed job's message is not acknowledged")),
    Rule("task_retry_on_worker_lost", lambda s: False, lambda value: (
        "warn: no effect on jobs: a job whose pool child died is recorded and then retried "
        "or dead-lettered by its own retry settings" if value else None)),
    Rule("task_reject_on_worker_lost", lambda s: True,
         _must_be_true("a job whose pool child died is not delivered again")),
    Rule("worker_prefetch_multiplier", lambda s: s.workers.prefetch_multiplier, _prefetch),
    Rule("worker_send_task_events", lambda s: s.workers.task_events, _any),
    Rule("task_send_sent_event", lambda s: s.workers.task_events, _any),
    Rule("worker_concurrency", lambda s: s.workers.count, _any),
)


def _normal(value: Any) -> Any:
    return sorted(value) if isinstance(value, list | tuple | set | frozenset) else value


def plan(conf: Any, settings: BoundarySettings) -> list[ConfNote]:
    """What install() does with each setting of :data:`RULES` for ``conf``; raises
    :class:`ConfigConflict` for a user value Boundary cannot work with."""
    notes = []
    for rule in RULES:
        current = conf.get(rule.setting)
        wanted = rule.wanted(settings)
        if current == DEFAULTS.get(rule.setting):
            if _normal(current) != _normal(wanted):
                notes.append(ConfNote(rule.setting, "set", wanted, current))
            continue
        verdict = rule.check(current)
        if verdict is not None and verdict.startswith("error: "):
            raise ConfigConflict(rule.setting, current, verdict.removeprefix("error: "))
        warning = verdict.removeprefix("warn: ") if verdict else None
        notes.append(ConfNote(rule.setting, "kept", current, warning=warning))
    return notes


#: The broker wiring install() always sets (the transport, the consumer that dead-letters
#: what it cannot run); a user's different value is replaced, with a warning.
WIRING = {
    "broker_transport": None,  # any value other than Celery's default
    "worker_consumer": DEFAULTS.get("worker_consumer"),
}


def wiring_notes(conf: Any, broker_options: dict[str, Any]) -> list[ConfNote]:
    """Warnings for user values of the broker wiring that install() replaces."""
    notes = []
    for setting, default in WIRING.items():
        current = conf.get(setting)
        if current not in (None, default) and "boundary_celery" not in str(current):
            notes.append(ConfNote(setting, "replaced", current, warning=(
                "boundary-celery needs its own; the user's value is not used")))
    user = conf.get("broker_transport_options") or {}
    for key, value in broker_options.items():
        if key in user and user[key] != value:
            notes.append(ConfNote(f"broker_transport_options.{key}", "replaced", user[key],
                                  warning=f"the job store's value {value!r} is used"))
    return notes


#: kombu Redis transport options (``broker_transport_options``) that would silently break
#: boundary-celery, each with the reason it is refused and what to use instead. The
#: options boundary-celery sets itself (``priority_steps``, ``sep``, the unacked keys,
#: ``visibility_timeout``) are replaced with a warning instead (see :func:`wiring_notes`).
REFUSED_TRANSPORT_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "global_keyprefix": (
        bool,
        "kombu's prefixing client prefixes only the first key of an EVALSHA and none of "
        "a command sent straight on a connection (the worker's claim), while the scripts "
        "that publish, claim, lease and dead-letter jobs take several keys: jobs would be "
        "published under the prefix and never claimed; to share one Redis between "
        "projects, give each a "
        "[store] key_prefix (BOUNDARY_STORE__KEY_PREFIX) and its own queue names, or its "
        "own Redis database (redis://host:6379/N)"),
    "ack_emulation": (
        lambda value: not value,
        "without it kombu drops the unacked bookkeeping that leases, redelivery after a "
        "worker dies and the consumer's begin call live in (kombu swaps in its plain QoS); "
        "leave it at kombu's default (True)"),
}

#: Celery broker settings that would put messages and job records in different places.
SAME_BROKER_SETTINGS = ("broker_read_url", "broker_write_url")


def refuse_broker_options(conf: Any, url: str) -> None:
    """Raise :class:`ConfigConflict` for a broker option boundary-celery cannot work with:
    a failover list of Redis URLs (Sentinel's excepted), a
    :data:`REFUSED_TRANSPORT_OPTIONS` value, or a read/write URL other than ``url`` (the
    job store lives in the broker's Redis, and its scripts touch both at once)."""
    if ";" in url and not url.startswith("sentinel://"):
        raise ConfigConflict("broker_url", url, (
            "failing over to another Redis server would publish jobs to a Redis their "
            "records and scheduler are not in; use Redis Sentinel (sentinel://h1:26379;"
            "sentinel://h2:26379) or one URL"))
    options = conf.get("broker_transport_options") or {}
    for key, (refused, reason) in REFUSED_TRANSPORT_OPTIONS.items():
        if key in options and refused(options[key]):
            raise ConfigConflict(f"broker_transport_options.{key}", options[key], reason)
    for setting in SAME_BROKER_SETTINGS:
        value = conf.get(setting)
        if value and value != url:
            raise ConfigConflict(setting, value, (
                "the job store and every list of a queue must be in the broker's Redis "
                f"({setting.removesuffix('_url').replace('broker_', '')}s would go "
                "elsewhere); set broker_url only"))


def apply(conf: Any, notes: list[ConfNote]) -> None:
    """Set the values ``plan`` decided to set."""
    conf.update({n.setting: n.value for n in notes if n.action == "set"})
