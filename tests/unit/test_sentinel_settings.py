"""``sentinel://`` broker URLs: the settings that accept them, the sentinel list parsed
from kombu's ``;``-separated form, and what ``install()`` makes of them (the master's
name from Celery's ``broker_transport_options`` or ``[redis] sentinel_master``; the
replication wait as transport options). No Redis is contacted: install() builds its
clients lazily. The failover itself: tests/e2e/test_sentinel.py."""

from __future__ import annotations

import pytest
from celery import Celery
from pydantic import ValidationError

import boundary_celery
from boundary_celery.adapters.redis_connect import is_sentinel, sentinel_hosts
from boundary_celery.settings import BoundarySettings
from boundary_celery.shell.flower import transport_for

pytestmark = pytest.mark.usefixtures("clean_env")  # tests/unit/conftest.py


URL = "sentinel://127.0.0.1:26379/2;sentinel://:pw@127.0.0.1:26380/2;sentinel://h3"


def test_sentinel_hosts_reads_every_sentinel_and_the_masters_db_and_password() -> None:
    hosts, master = sentinel_hosts(URL)
    assert hosts == [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("h3", 26379)]
    assert master == {"db": 2, "password": "pw"}
    assert is_sentinel(URL) and not is_sentinel("redis://127.0.0.1:6379/0")
    with pytest.raises(ValueError, match="not a sentinel URL"):
        sentinel_hosts("sentinel://a:1;redis://b:2")


def test_settings_accept_a_sentinel_url_and_the_wait_options() -> None:
    redis = BoundarySettings(redis={"url": URL, "sentinel_master": "mymaster",
                                    "wait_replicas": 1}).redis
    assert redis.effective_url() == URL
    assert (redis.wait_replicas, redis.wait_timeout_ms) == (1, 1000)
    with pytest.raises(ValidationError, match="wait_replicas"):
        BoundarySettings(redis={"wait_replicas": -1})
    with pytest.raises(ValidationError, match="sentinel://"):
        BoundarySettings(redis={"url": "http://127.0.0.1"})


def test_install_takes_the_master_name_from_the_settings() -> None:
    app = Celery("sentinel-unit")
    jobs = boundary_celery.install(app, BoundarySettings(
        redis={"url": URL, "sentinel_master": "mymaster", "wait_replicas": 1}))
    options = app.conf.broker_transport_options
    assert options["master_name"] == "mymaster"
    assert options["boundary_wait_replicas"] == 1
    assert app.conf.broker_transport == transport_for(URL) == "boundary-sentinel"
    assert jobs.store.sentinel_master == "mymaster"
    with app.connection_for_write() as conn:  # kombu resolves our Sentinel transport
        assert type(conn.transport).__name__ == "SentinelTransport"
        assert conn.as_uri().startswith("sentinel://")


def test_the_apps_master_name_wins_as_celery_documents_it() -> None:
    app = Celery("sentinel-unit", broker=URL)
    app.conf.broker_transport_options = {"master_name": "celery-master"}
    jobs = boundary_celery.install(app, BoundarySettings(redis={"sentinel_master": "ours"}))
    assert app.conf.broker_transport_options["master_name"] == "celery-master"
    assert jobs.store.sentinel_master == "celery-master"


def test_a_sentinel_broker_without_a_master_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sentinel_master"):
        boundary_celery.install(Celery("sentinel-unit", broker=URL), BoundarySettings())


def test_a_failover_to_the_next_sentinel_keeps_boundarys_transport() -> None:
    """kombu's Connection.switch takes the next URL's raw scheme as the transport (here
    kombu's own SentinelTransport: publishes without records, fetches without leases);
    the app's connections, and those of its pools, keep ours."""
    app = Celery("sentinel-unit")
    boundary_celery.install(app, BoundarySettings(
        redis={"url": URL, "sentinel_master": "mymaster"}))
    with app.connection_for_write() as conn:
        conn.maybe_switch_next()
        assert conn.transport_cls == "boundary-sentinel"
        assert type(conn.transport).__module__ == "boundary_celery.shell.transport"
        pooled = conn.Pool(limit=1).acquire()
        try:
            pooled.maybe_switch_next()
            assert pooled.transport_cls == "boundary-sentinel"
            assert pooled.hostname == "127.0.0.1" and pooled.port == 26380
        finally:
            pooled.release()
    plain = Celery("plain", broker=URL)  # an app without install(): kombu's, unchanged
    with plain.connection_for_write() as conn:
        conn.maybe_switch_next()
        assert conn.transport_cls == "sentinel"
