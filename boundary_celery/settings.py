"""Settings: pydantic-settings models and config-file loading.

Where a value comes from, strongest first:

1. keyword overrides passed to :func:`load_settings` (or to ``BoundarySettings(...)``);
2. the environment: ``BOUNDARY_<SECTION>__<KEY>`` (e.g. ``BOUNDARY_SCHEDULER__INTERVAL_MS=200``)
   beats the guide's flat variables (``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_PASSWORD``,
   ``REDIS_DATABASE``, ``REDIS_MAX_TOTAL``, ``REDIS_MAX_IDLE``, ``REDIS_MIN_IDLE``,
   ``REDIS_URL``, ``WORKER_COUNT``, ``POLL_INTERVAL_MS``);
3. the TOML file (``config/dev.toml`` by default, see :func:`load_settings`);
4. the defaults below.

``REDIS_URL`` (``redis.url``), when set, wins over host/port/password/database in
:meth:`RedisSettings.effective_url`. Empty environment variables count as unset.

Constructing ``BoundarySettings()`` directly reads the environment and the defaults only;
:func:`load_settings` adds the config file and turns every problem into a
:class:`SettingsError` naming the key at fault.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as _PydanticSettingsError

__all__ = [
    "ENV_PREFIX",
    "FLAT_ENV_VARS",
    "RETRY_PRESETS",
    "AdminSettings",
    "BoundarySettings",
    "LoggingSettings",
    "RedisSettings",
    "RetrySettings",
    "SchedulerSettings",
    "SettingsError",
    "StoreSettings",
    "WorkerSettings",
    "load_settings",
    "resolve_config_file",
]

log = logging.getLogger(__name__)

ENV_PREFIX = "BOUNDARY_"
CONFIG_ENV_VAR = "BOUNDARY_CONFIG"
ENVIRONMENT_ENV_VAR = "BOUNDARY_ENV"
DEFAULT_ENVIRONMENT = "dev"

#: The guide's flat environment variables and the settings key each one sets.
FLAT_ENV_VARS: dict[str, tuple[str, str]] = {
    "REDIS_URL": ("redis", "url"),
    "REDIS_HOST": ("redis", "host"),
    "REDIS_PORT": ("redis", "port"),
    "REDIS_PASSWORD": ("redis", "password"),
    "REDIS_DATABASE": ("redis", "database"),
    "REDIS_MAX_TOTAL": ("redis", "max_total"),
    "REDIS_MAX_IDLE": ("redis", "max_idle"),
    "REDIS_MIN_IDLE": ("redis", "min_idle"),
    "WORKER_COUNT": ("workers", "count"),
    "POLL_INTERVAL_MS": ("workers", "poll_interval_ms"),
}

#: Named retry schedules understood by ``core.retry.RetryPolicy.preset`` (docs/core-contract.md).
RETRY_PRESETS: frozenset[str] = frozenset({"reference", "immediate-30s-5m-1h"})

#: Section names accepted in TOML files besides the field names (the guide's spelling).
_SECTION_ALIASES = {"scheduled_processor": "scheduler"}

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")

# The TOML file of the load_settings() call in progress (None: no file).
_current_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "boundary_settings_toml_file", default=None
)


class SettingsError(ValueError):
    """Configuration is unusable. The message names the key path, the value and its origin."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


_Section = ConfigDict(extra="forbid", validate_default=True)


class RedisSettings(BaseModel):
    """The guide's ``:boundary/redis`` map. ``url`` (``REDIS_URL``) wins when set."""

    model_config = _Section

    url: str | None = Field(default=None, repr=False)
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=6379, ge=1, le=65535)
    password: str | None = Field(default=None, repr=False)
    database: int = Field(default=0, ge=0, le=15)
    timeout_ms: int = Field(default=2000, gt=0)
    max_total: int = Field(default=20, ge=1)
    max_idle: int = Field(default=10, ge=0)
    min_idle: int = Field(default=2, ge=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _check_pool(self) -> RedisSettings:
        if self.min_idle > self.max_idle:
            raise ValueError(
                f"min_idle ({self.min_idle}) must not exceed max_idle ({self.max_idle})"
            )
        return self

    def effective_url(self) -> str:
        """``url`` if set, else ``redis://[:password@]host:port/database``."""
        if self.url:
            return self.url
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"redis://{auth}{host}:{self.port}/{self.database}"


class WorkerSettings(BaseModel):
    """The guide's ``:workers`` map. ``count`` becomes Celery's concurrency."""

    model_config = _Section

    count: int = Field(default=5, ge=1)
    queues: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    poll_interval_ms: int = Field(default=1000, gt=0)
    shutdown_timeout_ms: int = Field(default=30000, ge=0)
    prefetch_multiplier: int = Field(default=1, ge=1)
    visibility_timeout_s: int = Field(default=3600, gt=0)
    heartbeat_interval_s: int = Field(default=5, gt=0)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Celery task events (Flower needs them); off saves the consumer 3 PUBLISHes a job.
    task_events: bool = True

    @field_validator("queues")
    @classmethod
    def _check_queues(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if any(not name for name in names):
            raise ValueError("queue names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        return names


class SchedulerSettings(BaseModel):
    """The guide's ``:scheduled-processor``: moves due delayed jobs and retries to their queues."""

    model_config = _Section

    enabled: bool = True
    interval_ms: int = Field(default=5000, gt=0)
    batch_size: int = Field(default=500, ge=1)


class RetrySettings(BaseModel):
    """Default retry policy (decisions.md "Retries"); a job type or an enqueue may override it."""

    model_config = _Section

    max_retries: int = Field(default=3, ge=0, le=25)
    backoff_strategy: Literal["exponential", "linear", "constant", "schedule"] = "exponential"
    initial_delay_ms: int = Field(default=1000, ge=0)
    max_delay_ms: int = Field(default=60000, ge=0)
    jitter: bool = False
    schedule: list[int] = Field(default_factory=list)
    preset: str | None = None

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: list[int]) -> list[int]:
        if any(delay < 0 for delay in value):
            raise ValueError("schedule delays must be >= 0 ms")
        return value

    @field_validator("preset")
    @classmethod
    def _check_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in RETRY_PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(sorted(RETRY_PRESETS))}")
        return value

    @model_validator(mode="after")
    def _check_strategy(self) -> RetrySettings:
        if self.backoff_strategy == "schedule" and not self.schedule and self.preset is None:
            raise ValueError('backoff_strategy "schedule" needs a non-empty schedule or a preset')
        return self


class StoreSettings(BaseModel):
    """Job store, dead letter queue and counters in Redis."""

    model_config = _Section

    key_prefix: str = Field(default="boundary", min_length=1, pattern=r"^\S+$")
    completed_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    dlq_max_size: int = Field(default=10000, ge=1)
    dlq_max_age_days: int = Field(default=180, ge=1)
    no_handler_grace_s: int = Field(default=300, ge=0)
    no_handler_retry_delay_ms: int = Field(default=5000, ge=0)
    declared_queues: list[str] | None = None


class AdminSettings(BaseModel):
    """The admin HTTP API and ``/metrics``. No token: no authentication."""

    model_config = _Section

    token: str | None = Field(default=None, repr=False)
    metrics_token: str | None = Field(default=None, repr=False)
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)


class LoggingSettings(BaseModel):
    model_config = _Section

    format: Literal["kv", "json"] = "kv"
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level


# --------------------------------------------------------------------------- sources


class FlatEnvSettingsSource(PydanticBaseSettingsSource):
    """The guide's un-prefixed variables (``REDIS_HOST`` ...) mapped onto nested keys."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ builds the whole nested mapping at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = os.environ if self._environ is None else self._environ
        data: dict[str, Any] = {}
        for var, (section, key) in FLAT_ENV_VARS.items():
            value = environ.get(var)
            if value is None or value == "":
                continue
            data.setdefault(section, {})[key] = value
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(FLAT_ENV_VARS)})"


def _normalise_keys(data: Any, depth: int = 0) -> Any:
    """kebab-case keys (the guide's EDN spelling) become snake_case; section aliases apply."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_") if isinstance(key, str) else key
        if depth == 0:
            name = _SECTION_ALIASES.get(name, name)
        out[name] = _normalise_keys(value, depth + 1)
    return out


class BoundaryTomlSource(TomlConfigSettingsSource):
    """TOML source that also accepts the guide's kebab-case keys."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = _normalise_keys(super()._read_file(file_path))
        assert isinstance(data, dict)
        return data


# --------------------------------------------------------------------------- root


class BoundarySettings(BaseSettings):
    """All settings. Prefer :func:`load_settings`, which also reads the config file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="forbid",
        validate_default=True,
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    _source_file: Path | None = PrivateAttr(default=None)

    @property
    def source_file(self) -> Path | None:
        """The TOML file these settings were read from (None: environment and defaults only)."""
        return self._source_file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            FlatEnvSettingsSource(settings_cls),
        ]
        toml_file = _current_toml_file.get()
        if toml_file is not None:
            sources.append(BoundaryTomlSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# --------------------------------------------------------------------------- loading

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve_config_file(path: str | Path | None = None, *, env: str | None = None) -> Path | None:
    """The TOML file :func:`load_settings` would read, or None for "defaults only".

    Explicit ``path``, else ``$BOUNDARY_CONFIG``, else ``config/<env>.toml`` under the current
    directory (``env`` argument, else ``$BOUNDARY_ENV``, else ``dev``) when that file exists.
    An explicitly named file that does not exist raises :class:`SettingsError`.
    """
    if path is not None and str(path) != "":
        chosen = Path(path)
        if not chosen.is_file():
            raise SettingsError(f"config file not found: {chosen}")
        return chosen
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        chosen = Path(from_env)
        if not chosen.is_file():
            raise SettingsError(f"config file not found: {chosen} (from ${CONFIG_ENV_VAR})")
        return chosen
    requested = env or os.environ.get(ENVIRONMENT_ENV_VAR) or None
    name = requested or DEFAULT_ENVIRONMENT
    if not _ENV_NAME.match(name):
        raise SettingsError(f"invalid environment name {name!r} (letters, digits, '.', '_', '-')")
    candidate = Path("config") / f"{name}.toml"
    if candidate.is_file():
        return candidate
    if requested:
        log.warning(
            "environment %r requested but %s does not exist; using defaults and environment",
            name,
            candidate,
        )
    return None


def load_settings(
    path: str | Path | None = None, *, env: str | None = None, **overrides: Any
) -> BoundarySettings:
    """Build the settings: overrides > environment > TOML file > defaults.

    ``overrides`` are keyword arguments shaped like the model (``scheduler={"interval_ms": 200}``
    merges into the scheduler section); ``scheduler__interval_ms=200`` is accepted as well.
    Any problem raises :class:`SettingsError`, e.g.
    ``scheduler.interval_ms: Input should be greater than 0 (got -5) in config/prod.toml``.
    """
    toml_file = resolve_config_file(path, env=env)
    init = _expand_overrides(overrides)
    token = _current_toml_file.set(toml_file)
    try:
        settings = BoundarySettings(**init)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(_describe_toml_error(toml_file, exc)) from None
    except ValidationError as exc:
        problems = _describe_validation_error(exc, toml_file, init)
        raise SettingsError("; ".join(problems), problems=problems) from None
    except _PydanticSettingsError as exc:
        # e.g. BOUNDARY_WORKERS__QUEUES=a,b: list and table values must be JSON
        raise SettingsError(_describe_env_error(exc)) from None
    finally:
        _current_toml_file.reset(token)
    settings._source_file = toml_file
    return settings


def _expand_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split("__")
        target = result
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise SettingsError(f"{'.'.join(parts)}: conflicts with override {part!r}")
            target = nxt
        leaf = parts[-1]
        if isinstance(value, BaseModel) and not isinstance(target.get(leaf), dict):
            value = value.model_dump()
        if isinstance(value, Mapping) and isinstance(target.get(leaf), dict):
            target[leaf].update(value)
        else:
            target[leaf] = dict(value) if isinstance(value, Mapping) else value
    return result


def _describe_env_error(exc: Exception) -> str:
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "environment"
    suspects: list[str] = []
    if match:
        prefix = ENV_PREFIX + field.upper()
        suspects = sorted(
            name for name in os.environ if name.upper().startswith(prefix) and os.environ[name]
        )
    hint = f" (check {', '.join(suspects)})" if suspects else ""
    return f'{field}: {exc}{hint}; list and table values must be JSON, e.g. \'["a", "b"]\''


def _describe_toml_error(toml_file: Path | None, exc: tomllib.TOMLDecodeError) -> str:
    where = str(toml_file) if toml_file is not None else "config file"
    message = str(exc)
    # Python < 3.14 has no exc.lineno; the position is at the end of the message.
    match = re.search(r"\(at line (\d+), column \d+\)$", message)
    if match is None or toml_file is None:
        return f"{where}: invalid TOML: {message}"
    lineno = int(match.group(1))
    try:
        line = toml_file.read_text(encoding="utf-8", errors="replace").splitlines()[lineno - 1]
    except (OSError, IndexError):
        line = ""
    shown = f": {line.strip()!r}" if line.strip() else ""
    return f"{where}:{lineno}: invalid TOML: {message}{shown}"


def _lookup(data: Any, loc: tuple[str, ...]) -> bool:
    for part in loc:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


def _env_origin(loc: tuple[str, ...]) -> str | None:
    """The environment variable that supplied ``loc`` (or one of its parents), if any."""
    environ = {key.upper(): value for key, value in os.environ.items() if value != ""}
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(part.upper() for part in loc[:depth])
        if name in environ:
            return name
    for var, key in FLAT_ENV_VARS.items():
        if key == loc[:2] and environ.get(var):
            return var
    return None


def _describe_validation_error(
    exc: ValidationError, toml_file: Path | None, init: Mapping[str, Any]
) -> list[str]:
    toml_data: dict[str, Any] = {}
    if toml_file is not None:
        try:
            toml_data = _normalise_keys(tomllib.loads(toml_file.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            toml_data = {}
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) if loc else "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (Extra inputs are not permitted)"
        text = f"{key}: {message}"
        if (
            "input" in error
            and error["type"] != "missing"
            and not isinstance(error["input"], Mapping)
        ):
            shown = error["input"]
            if loc and loc[-1] in {"password", "token", "metrics_token", "url"}:
                shown = "***"
            text += f" (got {shown!r})"
        if _lookup(init, loc):
            text += " in overrides"
        elif (origin := _env_origin(loc)) is not None:
            text += f" from environment variable {origin}"
        elif toml_file is not None and (not loc or _lookup(toml_data, loc[:1])):
            # the key itself, or the section holding it (cross-field checks), is in the file
            text += f" in {toml_file}"
        problems.append(text)
    return problems
