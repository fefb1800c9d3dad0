"""SettingsError and the readable text it carries.

Each problem names the key path, says what is wrong, shows the value (secrets masked) and
where it came from, e.g.
``scheduler.interval_ms: Input should be greater than 0 (got -5) in config/prod.toml``.
Which source supplied a key is for the caller (:mod:`boundary_celery.settings.sources`) to
say; this module only formats.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

__all__ = [
    "SettingsError",
    "describe_env_error",
    "describe_toml_error",
    "describe_validation_error",
]

#: Keys whose values error messages show as ``***``.
_SECRET_KEYS = frozenset({"password", "token", "metrics_token", "url"})


class SettingsError(ValueError):
    """Configuration is unusable. The message names the key path, the value and its origin."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


def describe_validation_error(
    exc: ValidationError, origin: Callable[[tuple[str, ...]], str | None]
) -> list[str]:
    """One line per error: ``key: message (got value) <origin>``.

    ``origin(loc)`` tells where the value at ``loc`` came from (``"in overrides"``,
    ``"in config/prod.toml"`` ...), or None when no source is known to have supplied it.
    """
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
            if loc and loc[-1] in _SECRET_KEYS:
                shown = "***"
            text += f" (got {shown!r})"
        where = origin(loc)
        if where is not None:
            text += f" {where}"
        problems.append(text)
    return problems


def describe_env_error(exc: Exception, env_prefix: str) -> str:
    """Text for pydantic-settings failing to parse an environment variable (non-JSON list...).

    Names the field and the set ``<env_prefix><FIELD>...`` variables that may be at fault.
    """
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "environment"
    suspects: list[str] = []
    if match:
        prefix = env_prefix + field.upper()
        suspects = sorted(
            name for name in os.environ if name.upper().startswith(prefix) and os.environ[name]
        )
    hint = f" (check {', '.join(suspects)})" if suspects else ""
    return f'{field}: {exc}{hint}; list and table values must be JSON, e.g. \'["a", "b"]\''


def describe_toml_error(toml_file: Path | None, exc: tomllib.TOMLDecodeError) -> str:
    """Text for a TOML syntax error: the file, the line number and the offending line."""
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
