"""Where settings values come from, and :func:`load_settings`.

:class:`BoundarySettings` nests the section models; its source order is the precedence:
keyword overrides, ``BOUNDARY_<SECTION>__<KEY>`` variables, the guide's flat variables
(:data:`FLAT_ENV_VARS`), the TOML file chosen by :func:`resolve_config_file` (kebab-case keys
and the ``scheduled-processor`` section name accepted), then the defaults.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as _PydanticSettingsError

from boundary_celery.settings.errors import (
    SettingsError,
    describe_env_error,
    describe_toml_error,
    describe_validation_error,
)
from boundary_celery.settings.models import (
    AdminSettings,
    LoggingSettings,
    RedisSettings,
    RetrySettings,
    SchedulerSettings,
    StoreSettings,
    WorkerSettings,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_ENVIRONMENT",
    "ENVIRONMENT_ENV_VAR",
    "ENV_PREFIX",
    "FLAT_ENV_VARS",
    "BoundarySettings",
    "BoundaryTomlSource",
    "FlatEnvSettingsSource",
    "load_settings",
    "resolve_config_file",
]

# The package's logger name, as before settings became a package.
log = logging.getLogger("boundary_celery.settings")

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

#: Section names accepted in TOML files besides the field names (the guide's spelling).
_SECTION_ALIASES = {"scheduled_processor": "scheduler"}

# The TOML file of the load_settings() call in progress (None: no file).
_current_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "boundary_settings_toml_file", default=None
)


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
        raise SettingsError(describe_toml_error(toml_file, exc)) from None
    except ValidationError as exc:
        problems = describe_validation_error(exc, _value_origin(toml_file, init))
        raise SettingsError("; ".join(problems), problems=problems) from None
    except _PydanticSettingsError as exc:
        # e.g. BOUNDARY_WORKERS__QUEUES=a,b: list and table values must be JSON
        raise SettingsError(describe_env_error(exc, ENV_PREFIX)) from None
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


# --------------------------------------------------------------------------- origins


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


def _value_origin(
    toml_file: Path | None, init: Mapping[str, Any]
) -> Callable[[tuple[str, ...]], str | None]:
    """For error messages: where the value at a key path came from, strongest source first."""
    toml_data: dict[str, Any] = {}
    if toml_file is not None:
        try:
            toml_data = _normalise_keys(tomllib.loads(toml_file.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            toml_data = {}

    def origin(loc: tuple[str, ...]) -> str | None:
        if _lookup(init, loc):
            return "in overrides"
        if (var := _env_origin(loc)) is not None:
            return f"from environment variable {var}"
        if toml_file is not None and (not loc or _lookup(toml_data, loc[:1])):
            # the key itself, or the section holding it (cross-field checks), is in the file
            return f"in {toml_file}"
        return None

    return origin
