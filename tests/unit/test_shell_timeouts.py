"""shell.timeouts: the publish-path bounds derived from ``[redis] timeout_ms``, kept where
the user chose a value, and broker failures named as BrokerPublishError."""

from __future__ import annotations

import pytest
import redis
from celery import Celery
from kombu.exceptions import InconsistencyError, OperationalError

from boundary_celery.core.errors import BrokerUnavailableError, JobValidationError
from boundary_celery.shell.timeouts import (
    PUBLISH_RETRY_POLICY,
    BrokerPublishError,
    broker_error,
    celery_settings,
    transport_options,
)


def test_transport_options_bound_every_connect_and_reply() -> None:
    assert transport_options(2000) == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    assert transport_options(250) == {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


def test_celery_settings_at_celery_defaults_are_derived() -> None:
    assert celery_settings(Celery("t").conf, 1500) == {
        "broker_connection_timeout": 1.5,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "redis_socket_timeout": 1.5,
        "redis_socket_connect_timeout": 1.5,
    }
    assert PUBLISH_RETRY_POLICY["max_retries"] == 1


def test_celery_settings_the_user_chose_are_kept() -> None:
    app = Celery("t")
    app.conf.update(broker_connection_timeout=10,
                    task_publish_retry_policy={"max_retries": 5},
                    redis_socket_timeout=30.0)
    assert celery_settings(app.conf, 1500) == {"redis_socket_connect_timeout": 1.5}


def conf(url: str = "redis://:secret@h:6379/3", **options: float) -> object:
    app = Celery("t")
    app.conf.update(broker_url=url, broker_transport_options=options)
    return app.conf


@pytest.mark.parametrize("exc", [
    OperationalError("Timeout reading from socket"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.ConnectionError("Error 111 connecting"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError("timed out"),
])
def test_broker_failures_become_broker_publish_errors(exc: BaseException) -> None:
    error = broker_error(conf(socket_timeout=0.3), exc)
    assert isinstance(error, BrokerPublishError)
    assert isinstance(error, BrokerUnavailableError) and isinstance(error, OperationalError)
    assert (error.broker, error.timeout_ms) == ("redis://:**@h:6379/3", 300)
    assert error.reason == str(exc)
    assert "secret" not in str(error)
    assert str(error).startswith(f"broker redis://:**@h:6379/3 unavailable (timeout 300 ms "
                                 f"per Redis call): {exc} (the job may have been stored")


@pytest.mark.parametrize("exc", [
    KeyError("x"), InconsistencyError("bindings"), JobValidationError("args", 1, "bad"),
    ValueError("x"), redis.exceptions.ResponseError("OOM"),
])
def test_other_errors_are_not_broker_failures(exc: BaseException) -> None:
    assert broker_error(conf(socket_timeout=0.3), exc) is None


def test_an_unbounded_socket_says_so() -> None:
    error = broker_error(conf(), OperationalError("x"))
    assert error is not None and error.timeout_ms is None
    assert "(no timeout per Redis call)" in str(error)


def test_a_broker_publish_error_is_passed_on_as_is() -> None:
    first = BrokerPublishError("redis://h", 5, "x")
    assert broker_error(conf(socket_timeout=1), first) is first
