"""boundary_celery.settings: defaults, environment, config files, precedence and errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from boundary_celery.settings import (
    BoundarySettings,
    RedisSettings,
    SettingsError,
    load_settings,
    resolve_config_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO_ROOT / "config"


pytestmark = pytest.mark.usefixtures("clean_env")  # tests/unit/conftest.py


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def copy_repo_config(tmp_path: Path) -> None:
    shutil.copytree(REPO_CONFIG, tmp_path / "config")


# --------------------------------------------------------------------------- defaults


def test_defaults_without_any_file() -> None:
    s = load_settings()
    assert s.source_file is None
    assert (s.redis.host, s.redis.port, s.redis.database) == ("localhost", 6379, 0)
    assert s.redis.password is None and s.redis.url is None
    assert (s.redis.timeout_ms, s.redis.max_total, s.redis.max_idle, s.redis.min_idle) == (
        2000,
        20,
        10,
        2,
    )
    assert s.workers.count == 5
    assert s.workers.queues == []  # the app's own queues only (decisions.md)
    assert s.workers.poll_interval_ms == 1000
    assert s.workers.shutdown_timeout_ms == 30000
    assert s.workers.prefetch_multiplier == 1
    assert s.workers.lease_s == 15
    assert s.workers.visibility_timeout_s is None  # deprecated, ignored
    assert s.workers.heartbeat_interval_s == 5
    assert s.workers.metrics_port is None
    assert (s.scheduler.enabled, s.scheduler.interval_ms, s.scheduler.batch_size) == (
        True,
        5000,
        500,
    )
    assert s.retry.max_retries == 3
    assert s.retry.backoff_strategy == "exponential"
    assert (s.retry.initial_delay_ms, s.retry.max_delay_ms) == (1000, 60000)
    assert s.retry.jitter is False and s.retry.schedule == [] and s.retry.preset is None
    assert s.store.key_prefix == "boundary"
    assert s.store.completed_ttl_s == 7 * 24 * 3600
    assert (s.store.dlq_max_size, s.store.dlq_max_age_days) == (10000, 180)
    assert (s.store.no_handler_grace_s, s.store.no_handler_retry_delay_ms) == (300, 5000)
    assert s.store.declared_queues is None
    assert (s.admin.token, s.admin.metrics_token) == (None, None)
    assert (s.admin.host, s.admin.port) == ("127.0.0.1", 8080)
    assert (s.logging.format, s.logging.level) == ("kv", "INFO")
    assert s.redis.effective_url() == "redis://localhost:6379/0"


def test_direct_construction_reads_env_but_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "config" / "dev.toml", "[workers]\ncount = 2\n")
    monkeypatch.setenv("POLL_INTERVAL_MS", "250")
    s = BoundarySettings()
    assert s.workers.count == 5
    assert s.workers.poll_interval_ms == 250


def test_secrets_are_not_in_repr() -> None:
    s = load_settings(redis={"password": "hunter2"}, admin={"token": "t0ken"})
    assert "hunter2" not in repr(s) and "t0ken" not in repr(s)


# --------------------------------------------------------------------------- environment


def test_flat_guide_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "REDIS_HOST": "redis.production.internal",
        "REDIS_PORT": "6380",
        "REDIS_PASSWORD": "your-secure-password",
        "REDIS_DATABASE": "3",
        "REDIS_MAX_TOTAL": "50",
        "REDIS_MAX_IDLE": "20",
        "REDIS_MIN_IDLE": "5",
        "WORKER_COUNT": "8",
        "POLL_INTERVAL_MS": "250",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.redis.host == "redis.production.internal"
    assert s.redis.port == 6380
    assert s.redis.password == "your-secure-password"
    assert s.redis.database == 3
    assert (s.redis.max_total, s.redis.max_idle, s.redis.min_idle) == (50, 20, 5)
    assert s.workers.count == 8
    assert s.workers.poll_interval_ms == 250
    assert s.redis.effective_url() == (
        "redis://:your-secure-password@redis.production.internal:6380/3"
    )


def test_prefixed_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNDARY_SCHEDULER__INTERVAL_MS", "200")
    monkeypatch.setenv("BOUNDARY_SCHEDULER__ENABLED", "false")
    monkeypatch.setenv("BOUNDARY_RETRY__JITTER", "true")
    monkeypatch.setenv("BOUNDARY_RETRY__BACKOFF_STRATEGY", "linear")
    monkeypatch.setenv("BOUNDARY_WORKERS__QUEUES", '["emails", "default"]')
    monkeypatch.setenv("BOUNDARY_STORE__KEY_PREFIX", "t42")
    monkeypatch.setenv("BOUNDARY_ADMIN__TOKEN", "secret")
    monkeypatch.setenv("BOUNDARY_LOGGING__FORMAT", "json")
    monkeypatch.setenv("BOUNDARY_LOGGING__LEVEL", "warn")
    s = load_settings()
    assert s.scheduler.interval_ms == 200 and s.scheduler.enabled is False
    assert s.retry.jitter is True and s.retry.backoff_strategy == "linear"
    assert s.workers.queues == ["emails", "default"]
    assert s.store.key_prefix == "t42"
    assert s.admin.token == "secret"
    assert s.logging.format == "json" and s.logging.level == "WARNING"


def test_prefixed_variable_beats_flat_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_COUNT", "7")
    monkeypatch.setenv("BOUNDARY_WORKERS__COUNT", "9")
    assert load_settings().workers.count == 9


def test_empty_environment_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "")
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("BOUNDARY_WORKERS__COUNT", "")
    s = load_settings()
    assert s.redis.password is None and s.redis.url is None
    assert s.workers.count == 5


def test_redis_url_wins_over_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "ignored.example")
    monkeypatch.setenv("REDIS_PORT", "7000")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6390/4")
    s = load_settings()
    assert s.redis.url == "redis://cache.internal:6390/4"
    assert s.redis.effective_url() == "redis://cache.internal:6390/4"


def test_redis_url_from_environment_wins_over_file(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path / "config" / "dev.toml", '[redis]\nurl = "redis://file:1/1"\n')
    monkeypatch.setenv("REDIS_URL", "rediss://env:2/2")
    assert load_settings().redis.effective_url() == "rediss://env:2/2"


# --------------------------------------------------------------------------- effective_url


@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        ({}, "redis://localhost:6379/0"),
        ({"host": "db", "port": 6380, "database": 9}, "redis://db:6380/9"),
        ({"password": "p@ss:w/rd#?%"}, "redis://:p%40ss%3Aw%2Frd%23%3F%25@localhost:6379/0"),
        ({"password": "a b"}, "redis://:a%20b@localhost:6379/0"),
        ({"host": "::1"}, "redis://[::1]:6379/0"),
        ({"url": "unix:///tmp/redis.sock", "host": "other"}, "unix:///tmp/redis.sock"),
    ],
)
def test_effective_url(kwargs: dict[str, object], url: str) -> None:
    assert RedisSettings.model_validate(kwargs).effective_url() == url


def test_quoted_password_round_trips_through_redis_py() -> None:
    from redis.connection import parse_url

    password = "p@ss:w/rd#?%"
    parsed = parse_url(RedisSettings(password=password, host="h").effective_url())
    assert parsed["password"] == password
    assert parsed["host"] == "h"


# --------------------------------------------------------------------------- files


def test_dev_and_prod_files_load(tmp_path: Path) -> None:
    copy_repo_config(tmp_path)
    dev = load_settings()
    assert dev.source_file == Path("config/dev.toml")
    assert dev.retry.jitter is False
    assert dev.logging.format == "kv"

    prod = load_settings(env="prod")
    assert prod.source_file == Path("config/prod.toml")
    assert prod.retry.jitter is True
    assert prod.logging.format == "json"
    assert prod.workers.count == 5
    assert (prod.redis.max_total, prod.redis.max_idle) == (50, 20)


def test_repo_files_have_every_section() -> None:
    import tomllib

    for name in ("dev.toml", "prod.toml"):
        data = tomllib.loads((REPO_CONFIG / name).read_text(encoding="utf-8"))
        assert set(data) == set(BoundarySettings.model_fields), name
        assert "Environment variables always win" in (REPO_CONFIG / name).read_text(
            encoding="utf-8"
        )


def test_boundary_env_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "config" / "dev.toml", "[workers]\ncount = 2\n")
    write(tmp_path / "config" / "staging.toml", "[workers]\ncount = 3\n")
    assert load_settings().workers.count == 2
    monkeypatch.setenv("BOUNDARY_ENV", "staging")
    s = load_settings()
    assert s.workers.count == 3
    assert s.source_file == Path("config/staging.toml")
    # the env argument beats BOUNDARY_ENV
    assert load_settings(env="dev").workers.count == 2


def test_boundary_env_without_file_uses_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOUNDARY_ENV", "nowhere")
    s = load_settings()
    assert s.source_file is None and s.workers.count == 5


def test_explicit_path_and_boundary_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "config" / "dev.toml", "[workers]\ncount = 2\n")
    a = write(tmp_path / "elsewhere" / "a.toml", "[workers]\ncount = 4\n")
    b = write(tmp_path / "elsewhere" / "b.toml", "[workers]\ncount = 6\n")
    assert load_settings(a).workers.count == 4
    assert load_settings(str(a)).source_file == a
    monkeypatch.setenv("BOUNDARY_CONFIG", str(b))
    assert load_settings().workers.count == 6
    assert load_settings(a).workers.count == 4  # explicit path beats BOUNDARY_CONFIG
    assert resolve_config_file() == b


def test_missing_explicit_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"not found: .*missing\.toml"):
        load_settings(tmp_path / "missing.toml")
    monkeypatch.setenv("BOUNDARY_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(SettingsError, match=r"gone\.toml.*BOUNDARY_CONFIG"):
        load_settings()


def test_invalid_environment_name_fails() -> None:
    with pytest.raises(SettingsError, match="invalid environment name"):
        load_settings(env="../etc/passwd")


def test_kebab_case_keys_and_guide_section_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "guide.toml",
        "[redis]\nmax-total = 50\n[scheduled-processor]\ninterval-ms = 100\n",
    )
    s = load_settings(path)
    assert s.redis.max_total == 50
    assert s.scheduler.interval_ms == 100


# --------------------------------------------------------------------------- precedence


def test_precedence_overrides_then_env_then_file_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "config" / "dev.toml",
        "[scheduler]\ninterval_ms = 1111\nbatch_size = 11\n[workers]\ncount = 2\n",
    )
    s = load_settings()
    assert (s.scheduler.interval_ms, s.scheduler.batch_size, s.scheduler.enabled) == (
        1111,
        11,
        True,
    )
    monkeypatch.setenv("BOUNDARY_SCHEDULER__INTERVAL_MS", "200")
    monkeypatch.setenv("WORKER_COUNT", "3")
    s = load_settings()
    assert (s.scheduler.interval_ms, s.scheduler.batch_size) == (200, 11)  # env merges, file stays
    assert s.workers.count == 3
    s = load_settings(scheduler={"interval_ms": 50}, workers__count=4)
    assert (s.scheduler.interval_ms, s.scheduler.batch_size) == (50, 11)
    assert s.workers.count == 4
    assert s.workers.poll_interval_ms == 1000  # default under everything


# --------------------------------------------------------------------------- errors


def test_bad_value_in_file_names_key_value_and_file(tmp_path: Path) -> None:
    write(tmp_path / "config" / "prod.toml", "[scheduler]\ninterval_ms = -5\n")
    with pytest.raises(SettingsError) as info:
        load_settings(env="prod")
    assert str(info.value) == (
        "scheduler.interval_ms: Input should be greater than 0 (got -5) in config/prod.toml"
    )
    assert isinstance(info.value, ValueError)


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    write(tmp_path / "config" / "dev.toml", "[scheduler]\nintervall_ms = 100\n")
    with pytest.raises(SettingsError, match=r"scheduler\.intervall_ms: unknown key") as info:
        load_settings()
    assert "config/dev.toml" in str(info.value)


def test_unknown_section_in_file_names_it(tmp_path: Path) -> None:
    write(tmp_path / "config" / "dev.toml", "[schedular]\ninterval_ms = 100\n")
    with pytest.raises(SettingsError, match=r"^schedular: unknown key"):
        load_settings()


def test_bad_toml_names_file_line_and_key(tmp_path: Path) -> None:
    write(tmp_path / "config" / "dev.toml", "[workers]\ncount = 2\npoll_interval_ms = \n")
    with pytest.raises(SettingsError, match=r"config/dev\.toml:3: invalid TOML") as info:
        load_settings()
    assert "poll_interval_ms" in str(info.value)


def test_bad_value_from_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "not-a-port")
    with pytest.raises(SettingsError, match=r"redis\.port: .*'not-a-port'.*REDIS_PORT"):
        load_settings()


def test_unknown_prefixed_nested_variable_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNDARY_SCHEDULER__INTERVALL_MS", "5")
    with pytest.raises(SettingsError, match="BOUNDARY_SCHEDULER__INTERVALL_MS"):
        load_settings()


def test_non_json_list_in_environment_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNDARY_WORKERS__QUEUES", "a,b")
    with pytest.raises(SettingsError, match=r"^workers: .*BOUNDARY_WORKERS__QUEUES.*JSON"):
        load_settings()


def test_bad_override_fails() -> None:
    with pytest.raises(SettingsError, match=r"retry\.max_retries: .*less than or equal to 25"):
        load_settings(retry={"max_retries": 26})


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    write(
        tmp_path / "config" / "dev.toml",
        '[redis]\ndatabase = 16\n[logging]\nformat = "xml"\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert [p.split(":")[0] for p in info.value.problems] == ["redis.database", "logging.format"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"redis": {"url": "http://x"}}, "redis.url"),
        ({"redis": {"min_idle": 11}}, "redis"),
        ({"workers": {"count": 0}}, "workers.count"),
        ({"workers": {"queues": [" "]}}, "workers.queues"),
        ({"workers": {"queues": ["a", "a"]}}, "workers.queues"),
        ({"retry": {"backoff_strategy": "fibonacci"}}, "retry.backoff_strategy"),
        ({"retry": {"backoff_strategy": "schedule"}}, "retry"),
        ({"retry": {"schedule": [1000, -1]}}, "retry.schedule"),
        ({"retry": {"preset": "nope"}}, "retry.preset"),
        ({"logging": {"level": "LOUD"}}, "logging.level"),
        ({"admin": {"port": 70000}}, "admin.port"),
        ({"store": {"key_prefix": ""}}, "store.key_prefix"),
    ],
)
def test_invalid_values_fail(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert str(info.value).startswith(f"{key}: ")


def test_schedule_strategy_with_schedule_or_preset_is_valid() -> None:
    s = load_settings(retry={"backoff_strategy": "schedule", "schedule": [0, 30000]})
    assert s.retry.schedule == [0, 30000]
    s = load_settings(retry={"backoff_strategy": "schedule", "preset": "reference"})
    assert s.retry.preset == "reference"


def test_password_is_masked_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(redis={"url": "http://user:sekrit@x"})
    assert "sekrit" not in str(info.value)


def test_install_maps_workers_section_onto_celery(monkeypatch):
    """[workers] queues join what `celery worker` consumes without -Q (beside the app's
    default queue); task_events switches Celery's task events (Flower needs them on)."""
    from celery import Celery

    import boundary_celery
    from boundary_celery.settings import BoundarySettings

    on = Celery("on")
    boundary_celery.install(on, BoundarySettings(workers={"queues": ["emails", "media"]}))
    on.finalize()
    assert {"celery", "emails", "media"} <= set(on.amqp.queues.consume_from)
    assert on.conf.worker_send_task_events is True and on.conf.task_send_sent_event is True
    off = Celery("off")
    boundary_celery.install(off, BoundarySettings(workers={"task_events": False}))
    assert off.conf.worker_send_task_events is False and off.conf.task_send_sent_event is False


def test_install_with_the_shipped_settings_adds_no_queue_to_the_app():
    """A Celery project's app keeps the queues it had: Celery's own integration suite
    fails any test whose app has a queue besides ``celery`` (found: ['celery', 'default'])."""
    from celery import Celery

    import boundary_celery
    from boundary_celery.settings import BoundarySettings

    app = Celery("plain-queues")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    boundary_celery.install(app, BoundarySettings())
    app.finalize()
    # Besides its default queue, only the queues its tasks declare: finalize also binds
    # the shared tasks other tests made, some declaring their own queues.
    declared = {getattr(t, "boundary_queue", None) or getattr(t, "queue", None)
                for t in app.tasks.values()} - {None}
    assert "default" not in declared
    assert set(app.amqp.queues) == {"celery"} | declared
    assert set(app.amqp.queues.consume_from) == {"celery"} | declared
