"""``install()`` and the Celery settings it needs: set at Celery's default, kept (with a
warning where it costs a guarantee) when the user chose, refused by name when impossible."""

from __future__ import annotations

import logging

import pytest
from celery import Celery
from celery.app.defaults import DEFAULTS

import boundary_celery
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell.conf_policy import ConfigConflict


def installed(**conf: object) -> Celery:
    app = Celery("policy")
    app.conf.update(conf)
    boundary_celery.install(app, BoundarySettings())
    return app


def test_celery_defaults_get_what_boundary_needs() -> None:
    app = installed()
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.task_default_queue == "celery"  # the app's own default queue is kept
    notes = {n.setting: n for n in app.boundary.conf_notes}
    assert notes["task_acks_late"].action == "set" and notes["task_acks_late"].previous is False


@pytest.mark.parametrize(("setting", "value"), [
    ("task_serializer", "pickle"),
    ("result_serializer", "pickle"),
    ("accept_content", ["json", "pickle"]),
    ("accept_content", ["msgpack"]),
])
def test_a_setting_boundary_cannot_work_with_is_refused_by_name(setting: str,
                                                                value: object) -> None:
    with pytest.raises(ConfigConflict) as info:
        installed(**{setting: value})
    assert info.value.setting == setting and setting in str(info.value)


def test_a_users_weaker_choice_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="boundary_celery.worker"):
        app = installed(worker_prefetch_multiplier=8, task_default_queue="jobs",
                        worker_concurrency=3)
    assert app.conf.worker_prefetch_multiplier == 8
    assert app.conf.task_default_queue == "jobs"
    assert app.conf.worker_concurrency == 3
    notes = {n.setting: n for n in app.boundary.conf_notes}
    assert notes["worker_prefetch_multiplier"].action == "kept"
    assert "strict priority" in (notes["worker_prefetch_multiplier"].warning or "")
    assert notes["worker_concurrency"].warning is None
    assert any("worker_prefetch_multiplier" in r.getMessage() for r in caplog.records)


def test_broker_wiring_replaced_with_a_warning() -> None:
    app = installed(broker_transport_options={"priority_steps": [0, 3, 6, 9],
                                              "visibility_timeout": 120})
    options = app.conf.broker_transport_options
    assert options["priority_steps"] == [0, 2, 4, 6, 8]
    assert options["visibility_timeout"] == 15  # the lease, not a visibility timeout
    notes = {n.setting: n for n in app.boundary.conf_notes}
    assert "lease" in (notes["broker_transport_options.visibility_timeout"].warning or "")
    assert notes["broker_transport_options.priority_steps"].action == "replaced"


def test_message_protocol_1_is_refused() -> None:
    with pytest.raises(ConfigConflict, match="task_protocol"):
        installed(task_protocol=1)


def test_job_options_on_app_task_declare_a_job_type() -> None:
    app = installed()

    @app.task(shared=False, boundary={"queue": "emails", "priority": "high", "max_retries": 2,
                                      "retry_policy": "reference"})
    def notify(to: str) -> str:
        return to

    assert notify.boundary_declared is True
    assert (notify.boundary_queue, notify.boundary_priority.value) == ("emails", "high")
    assert notify.boundary_max_retries == 2
    assert notify.boundary_retry_policy is not None

    @app.task(shared=False)
    def plain() -> None:
        return None

    assert plain.boundary_declared is False and plain.boundary_queue is None


def test_bad_job_options_on_app_task_fail_at_definition() -> None:
    from boundary_celery.core.errors import JobValidationError

    app = installed()
    with pytest.raises(JobValidationError, match="priority"):
        @app.task(shared=False, boundary={"priority": "urgent"})
        def broken() -> None:
            return None

        app.finalize()
        _ = broken.boundary_priority


@pytest.mark.parametrize(("option", "value", "says"), [
    ("global_keyprefix", "proj:", "key_prefix"),
    ("ack_emulation", False, "leases"),
])
def test_a_transport_option_that_breaks_jobs_is_refused_by_name(option: str, value: object,
                                                                says: str) -> None:
    app = Celery("policy")
    app.conf.broker_transport_options = {option: value}
    with pytest.raises(ConfigConflict) as info:
        boundary_celery.install(app, BoundarySettings())
    assert info.value.setting == f"broker_transport_options.{option}"
    assert f"broker_transport_options.{option}" in str(info.value) and says in str(info.value)
    assert getattr(app, "boundary", None) is None  # refused before anything changed
    assert app.conf.broker_transport_options == {option: value}


def test_kombus_own_defaults_of_refused_options_are_fine() -> None:
    app = installed(broker_transport_options={"global_keyprefix": "", "ack_emulation": True})
    assert app.boundary is not None


@pytest.mark.parametrize("setting", ["broker_read_url", "broker_write_url"])
def test_a_read_or_write_url_elsewhere_is_refused(setting: str) -> None:
    url = "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigConflict, match=setting):
        installed(broker_url=url, **{setting: "redis://127.0.0.1:6379/5"})
    app = installed(broker_url=url, **{setting: url})  # the same Redis: fine
    assert app.boundary is not None


@pytest.mark.parametrize(("option", "value"), [
    ("sep", ":"),
    ("unacked_key", "unacked"),
    ("unacked_index_key", "unacked_index"),
    ("unacked_mutex_key", "unacked_mutex"),
])
def test_key_names_are_replaced_with_a_warning(option: str, value: object) -> None:
    app = installed(broker_transport_options={option: value})
    assert app.conf.broker_transport_options[option] != value
    notes = {n.setting: n for n in app.boundary.conf_notes}
    note = notes[f"broker_transport_options.{option}"]
    assert note.action == "replaced" and note.value == value and note.warning


def test_options_that_keep_their_meaning_are_kept() -> None:
    options = {"queue_order_strategy": "priority", "fanout_prefix": True,
               "fanout_patterns": True, "unacked_restore_limit": 50, "health_check_interval": 10,
               "client_name": "proj", "polling_interval": 2}
    app = installed(broker_transport_options=options)
    for key, value in options.items():
        assert app.conf.broker_transport_options[key] == value
    assert not [n for n in app.boundary.conf_notes if n.setting.startswith("broker_transport")]


@pytest.mark.skipif("task_retry_on_worker_lost" not in DEFAULTS,
                    reason="Celery < 5.7 has no task_acks_on_failure / task_retry_on_worker_lost")
def test_celery_57_ack_and_worker_lost_settings_warn_what_they_mean() -> None:
    app = installed(task_acks_on_failure=False, task_retry_on_worker_lost=True)
    notes = {n.setting: n for n in app.boundary.conf_notes}
    assert notes["task_acks_on_failure"].action == "kept"
    assert "not acknowledged" in (notes["task_acks_on_failure"].warning or "")
    assert "no effect on jobs" in (notes["task_retry_on_worker_lost"].warning or "")
    quiet = installed(task_acks_on_failure=True)
    assert not [n for n in quiet.boundary.conf_notes if n.warning]


def test_a_failover_list_of_redis_urls_is_refused() -> None:
    with pytest.raises(ConfigConflict, match=r"broker_url.*Sentinel"):
        installed(broker_url="redis://127.0.0.1:6379/0;redis://127.0.0.1:6380/0")
