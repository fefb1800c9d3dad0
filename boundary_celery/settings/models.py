"""The settings sections: one pydantic model per TOML table, with defaults and validation.

Plain models that read nothing themselves; :class:`boundary_celery.settings.BoundarySettings`
(in :mod:`boundary_celery.settings.sources`) nests them and fills them from the sources.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "RETRY_PRESETS",
    "AdminSettings",
    "LoggingSettings",
    "RedisSettings",
    "RetrySettings",
    "SchedulerSettings",
    "StoreSettings",
    "WorkerSettings",
]

#: Named retry schedules understood by ``core.retry.RetryPolicy.preset`` (docs/core-contract.md).
RETRY_PRESETS: frozenset[str] = frozenset({"reference", "immediate-30s-5m-1h"})

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")

_Section = ConfigDict(extra="forbid", validate_default=True)


class RedisSettings(BaseModel):
    """The guide's ``:boundary/redis`` map. ``url`` (``REDIS_URL``) wins when set."""

    model_config = _Section

    url: str | None = Field(default=None, repr=False)
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=6379, ge=1, le=65535)
    #: A Redis ACL user (with ``password``); unset: the ``default`` user.
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    database: int = Field(default=0, ge=0, le=15)
    timeout_ms: int = Field(default=2000, gt=0)
    max_total: int = Field(default=20, ge=1)
    max_idle: int = Field(default=10, ge=0)
    min_idle: int = Field(default=2, ge=0)
    #: TLS, for a ``rediss://`` URL (the broker, the job store, the admin app and the CLI
    #: alike): PEM files of the CA that signed the server's certificate (unset: the
    #: system's CAs), and of this client's certificate and key for a server that asks for
    #: one (``tls-auth-clients yes``). ``tls_verify = "required"`` checks the server's
    #: certificate and its host name; ``"none"`` checks nothing (never in production).
    #: A file or ``tls_verify = "none"`` without ``url`` makes :meth:`effective_url`
    #: ``rediss://``; with a ``redis://`` or ``unix://`` url they are an error.
    #: They become Celery's ``broker_use_ssl`` unless the app sets its own.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: Literal["required", "none"] = "required"
    #: Redis Sentinel: with a ``sentinel://h1:26379;sentinel://h2:26379/0`` url, the
    #: master group to follow (Celery's ``broker_transport_options["master_name"]``
    #: wins when the app sets it).
    sentinel_master: str | None = Field(default=None, min_length=1)
    #: Bound what a failover can lose: every enqueue waits (Redis ``WAIT``) until this
    #: many replicas have the job, at most ``wait_timeout_ms``; 0 does not wait.
    wait_replicas: int = Field(default=0, ge=0)
    wait_timeout_ms: int = Field(default=1000, gt=0)

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _check_file(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        path = os.path.abspath(os.path.expanduser(value.strip()))
        if not os.path.isfile(path):
            raise ValueError(f"file not found: {path}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"file not readable: {path}")
        return path

    @field_validator("tls_verify", mode="before")
    @classmethod
    def _check_verify(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        return value

    @model_validator(mode="after")
    def _check_pool(self) -> RedisSettings:
        if self.min_idle > self.max_idle:
            raise ValueError(
                f"min_idle ({self.min_idle}) must not exceed max_idle ({self.max_idle})"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> RedisSettings:
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("tls_key_file needs tls_cert_file (the client certificate)")
        if self.tls_requested and self.url and self.url.startswith("sentinel://"):
            raise ValueError("tls_* settings with a sentinel:// url are not supported yet")
        if self.tls_requested and self.url and not self.url.startswith("rediss://"):
            raise ValueError("tls_* settings need a rediss:// url (url is "
                             f"{self.url.partition('://')[0]}://)")
        return self

    @property
    def tls_requested(self) -> bool:
        """True when a ``tls_*`` setting asks for TLS: a file, or ``tls_verify = "none"``
        (``"required"``, the default, alone says nothing)."""
        return bool(self.tls_ca_file or self.tls_cert_file or self.tls_key_file
                    or self.tls_verify == "none")

    def effective_url(self) -> str:
        """``url`` if set, else ``redis[s]://[[username]:password@]host:port/database``
        (``rediss`` when a ``tls_*`` setting is given)."""
        if self.url:
            return self.url
        scheme = "rediss" if self.tls_requested else "redis"
        user = quote(self.username, safe="") if self.username else ""
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else (
            f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.database}"


class WorkerSettings(BaseModel):
    """The guide's ``:workers`` map. ``count`` becomes Celery's concurrency."""

    model_config = _Section

    count: int = Field(default=5, ge=1)
    #: Queues a worker started without ``-Q`` consumes besides the app's own (its
    #: ``task_default_queue`` and the queues its job types declare). Empty by default: a
    #: Celery project's worker consumes what it did before (decisions.md: the default
    #: queue is the app's; the guide's ``default`` is set where wanted, as the demo does).
    queues: list[str] = Field(default_factory=list)
    poll_interval_ms: int = Field(default=1000, gt=0)
    shutdown_timeout_ms: int = Field(default=30000, ge=0)
    prefetch_multiplier: int = Field(default=1, ge=1)
    #: A worker renews the lease on every delivery it holds each heartbeat; a delivery
    #: whose lease is this old (its worker died) is delivered again. Never by run time.
    lease_s: int = Field(default=15, gt=0)
    #: Deprecated and ignored (leases replaced the visibility timeout); kept so old
    #: settings files still load.
    visibility_timeout_s: int | None = Field(default=None, gt=0)
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

    @model_validator(mode="after")
    def _check_lease(self) -> WorkerSettings:
        if self.lease_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"lease_s ({self.lease_s}) must be at least twice heartbeat_interval_s "
                f"({self.heartbeat_interval_s}): the lease is renewed every heartbeat")
        return self


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
    """Job store, dead letter queue and counters in Redis.

    ``max_message_bytes`` bounds what a worker decodes of a task message: a body that
    decodes (base64, decompression) to more bytes is dead-lettered unread, and a
    compressed one is never inflated past the bound (a decompression bomb).
    """

    model_config = _Section

    key_prefix: str = Field(default="boundary", min_length=1, pattern=r"^\S+$")
    completed_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    dlq_max_size: int = Field(default=10000, ge=1)
    dlq_max_age_days: int = Field(default=180, ge=1)
    no_handler_grace_s: int = Field(default=300, ge=0)
    no_handler_retry_delay_ms: int = Field(default=5000, ge=0)
    declared_queues: list[str] | None = None
    #: Largest JSON-encoded job ``args`` an enqueue or a Celery publish may carry; a
    #: bigger one raises JobValidationError("args") before anything reaches Redis.
    max_args_bytes: int = Field(default=1_048_576, ge=1)
    #: Most bytes a task message's body may decode to (after base64 and decompression,
    #: checked while it inflates); a worker dead-letters a bigger one unread.
    max_message_bytes: int = Field(default=8_388_608, ge=1)


class AdminSettings(BaseModel):
    """The admin HTTP API and ``/metrics`` (docs/deploy.md, "Admin security model").

    With ``token`` every API route needs ``Authorization: Bearer <token>``. Without one
    the server binds loopback addresses only unless ``insecure``. ``/metrics`` takes
    ``metrics_token`` or ``token`` when either is set, unless ``metrics_public``.
    ``allowed_origins`` adds origins (``https://ops.example.com``) besides the server's
    own from which a browser may send state-changing requests.
    """

    model_config = _Section

    token: str | None = Field(default=None, repr=False)
    metrics_token: str | None = Field(default=None, repr=False)
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)
    insecure: bool = False
    metrics_public: bool = False
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("token", "metrics_token")
    @classmethod
    def _check_token(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value != value.strip() or any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace (it is sent as a bearer token)")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://host[:port]")
        return value


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
