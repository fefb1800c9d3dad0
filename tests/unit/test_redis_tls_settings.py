"""``[redis] tls_*`` settings, the TLS options built from them, and what ``install()``
does with Celery's ``broker_use_ssl`` (kept when the app sets it; filled in otherwise).
No Redis is contacted: install() builds its clients lazily."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.adapters.redis_connect import client_kwargs, same_tls, tls_options
from boundary_celery.settings import BoundarySettings, SettingsError, load_settings

pytestmark = pytest.mark.usefixtures("clean_env")  # tests/unit/conftest.py


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    """Three files standing in for PEMs (the settings check only that they exist)."""
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(path)
    return files


def test_defaults_are_no_tls_and_verify_required() -> None:
    redis = BoundarySettings().redis
    assert (redis.tls_ca_file, redis.tls_cert_file, redis.tls_key_file) == (None, None, None)
    assert redis.tls_verify == "required"
    assert not redis.tls_requested
    assert redis.effective_url() == "redis://localhost:6379/0"


def test_env_vars_set_the_tls_fields(monkeypatch: pytest.MonkeyPatch,
                                     pems: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://app:secret@127.0.0.1:6380/0")
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_CA_FILE", pems["ca"])
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_CERT_FILE", pems["cert"])
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_KEY_FILE", pems["key"])
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_VERIFY", "None")
    redis = load_settings().redis
    assert (redis.tls_ca_file, redis.tls_cert_file, redis.tls_key_file) == (
        pems["ca"], pems["cert"], pems["key"])
    assert redis.tls_verify == "none"


def test_toml_sets_the_tls_fields_and_relative_paths_become_absolute(
        tmp_path: Path, pems: dict[str, str]) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.toml").write_text(
        '[redis]\nurl = "rediss://h:1/0"\ntls-ca-file = "ca.pem"\n')
    redis = load_settings().redis
    assert redis.tls_ca_file == pems["ca"]


def test_a_missing_file_is_an_error_naming_the_field_and_its_origin(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_CA_FILE", str(missing))
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith("redis.tls_ca_file: Value error, file not found: ")
    assert str(missing) in text
    assert "BOUNDARY_REDIS__TLS_CA_FILE" in text


@pytest.mark.parametrize("field", ["tls_cert_file", "tls_key_file"])
def test_each_file_field_is_checked(field: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=rf"^redis\.{field}: .*file not found"):
        load_settings(redis={field: str(tmp_path / "missing.pem")})


def test_bad_verify_value_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"redis\.tls_verify: Input should be 'required' or "
                                            r"'none'"):
        load_settings(redis={"tls_verify": "maybe"})


def test_a_key_without_its_certificate_is_refused(pems: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="tls_key_file needs tls_cert_file"):
        load_settings(redis={"url": "rediss://h:1/0", "tls_key_file": pems["key"]})


@pytest.mark.parametrize("url", ["redis://h:1/0", "unix:///tmp/redis.sock"])
def test_tls_files_with_a_plain_url_are_refused(url: str, pems: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"tls_\* settings need a rediss:// url"):
        load_settings(redis={"url": url, "tls_ca_file": pems["ca"]})


def test_tls_without_url_makes_the_host_port_url_rediss(pems: dict[str, str]) -> None:
    redis = load_settings(redis={"host": "cache", "port": 6380, "username": "app",
                                 "password": "s/cret", "tls_ca_file": pems["ca"]}).redis
    assert redis.effective_url() == "rediss://app:s%2Fcret@cache:6380/0"
    assert load_settings(redis={"username": "app"}).redis.effective_url() == (
        "redis://app@localhost:6379/0")
    assert load_settings(redis={"tls_verify": "none"}).redis.effective_url() == (
        "rediss://localhost:6379/0")
    # "required" is the default: alone it does not ask for TLS
    assert load_settings(redis={"url": "redis://h:1/0", "tls_verify": "required"}).redis.url


def test_tls_options_are_redis_py_and_kombu_keywords(pems: dict[str, str]) -> None:
    assert tls_options(ca_file=pems["ca"], cert_file=pems["cert"], key_file=pems["key"]) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True,
        "ssl_ca_certs": pems["ca"], "ssl_certfile": pems["cert"], "ssl_keyfile": pems["key"]}
    assert tls_options(verify="none") == {"ssl_cert_reqs": ssl.CERT_NONE,
                                          "ssl_check_hostname": False}


def test_plain_urls_get_no_ssl_keywords() -> None:
    options = tls_options(ca_file="/ca.pem")
    assert client_kwargs("rediss://h:1/0", options) == options
    assert client_kwargs("redis://h:1/0", options) == {}
    assert client_kwargs("unix:///tmp/r.sock", options) == {}


def test_same_tls_normalises_cert_reqs() -> None:
    ours = tls_options(ca_file="/ca.pem")
    assert same_tls({"ssl_cert_reqs": "required", "ssl_ca_certs": "/ca.pem"}, ours)
    assert same_tls({"ssl_ca_certs": "/ca.pem"}, ours)  # redis-py's default is required
    assert not same_tls({"ssl_cert_reqs": ssl.CERT_NONE, "ssl_ca_certs": "/ca.pem"}, ours)
    assert not same_tls({"ssl_ca_certs": "/other.pem"}, ours)
    assert not same_tls({**ours, "ssl_check_hostname": False}, ours)


def test_install_fills_broker_use_ssl_and_the_store_from_the_settings(
        pems: dict[str, str]) -> None:
    app = Celery("tls-unit")
    settings = load_settings(redis={"url": "rediss://app:secret@127.0.0.1:6380/0",
                                    "tls_ca_file": pems["ca"], "tls_cert_file": pems["cert"],
                                    "tls_key_file": pems["key"]})
    jobs = boundary_celery.install(app, settings)
    wanted = tls_options(ca_file=pems["ca"], cert_file=pems["cert"], key_file=pems["key"])
    assert app.conf.broker_use_ssl == wanted
    assert jobs.store.tls == wanted
    assert not [n for n in jobs.conf_notes if n.setting == "broker_use_ssl"]


def test_a_rediss_url_without_settings_verifies_with_the_system_cas() -> None:
    app = Celery("tls-unit", broker="rediss://127.0.0.1:6380/0")
    boundary_celery.install(app, BoundarySettings())
    assert app.conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                                       "ssl_check_hostname": True}


def test_the_apps_own_broker_use_ssl_is_kept_and_used_by_the_store(
        caplog: pytest.LogCaptureFixture, pems: dict[str, str]) -> None:
    own = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": pems["cert"],
           "ssl_password": "hunter2"}
    app = Celery("tls-unit", broker="rediss://127.0.0.1:6380/0")
    app.conf.broker_use_ssl = dict(own)
    settings = load_settings(redis={"tls_ca_file": pems["ca"]})
    with caplog.at_level(logging.WARNING, logger="boundary_celery.worker"):
        jobs = boundary_celery.install(app, settings)
    assert app.conf.broker_use_ssl == own
    assert jobs.store.tls == own
    [note] = [n for n in jobs.conf_notes if n.setting == "broker_use_ssl"]
    assert note.action == "kept" and "tls_*" in (note.warning or "")
    assert note.value["ssl_password"] == "***"
    assert "broker_use_ssl" in caplog.text and "hunter2" not in caplog.text


def test_the_apps_own_broker_use_ssl_agreeing_with_the_settings_is_kept_silently(
        pems: dict[str, str]) -> None:
    app = Celery("tls-unit", broker="rediss://127.0.0.1:6380/0")
    app.conf.broker_use_ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": pems["ca"]}
    jobs = boundary_celery.install(app, load_settings(redis={"tls_ca_file": pems["ca"]}))
    assert app.conf.broker_use_ssl == {"ssl_cert_reqs": "required", "ssl_ca_certs": pems["ca"]}
    assert not [n for n in jobs.conf_notes if n.setting == "broker_use_ssl"]


def test_tls_settings_with_a_plain_broker_url_are_ignored_with_a_warning(
        caplog: pytest.LogCaptureFixture, pems: dict[str, str]) -> None:
    app = Celery("tls-unit", broker="redis://127.0.0.1:6380/0")
    with caplog.at_level(logging.WARNING, logger="boundary_celery.worker"):
        jobs = boundary_celery.install(app, load_settings(redis={"tls_ca_file": pems["ca"]}))
    assert not app.conf.broker_use_ssl
    assert jobs.store.tls == {}
    assert "redis.tls_*" in caplog.text and "not rediss://" in caplog.text
