"""Settings: pydantic-settings models and config-file loading.

Where a value comes from, strongest first:

1. keyword overrides passed to :func:`load_settings` (or to ``BoundarySettings(...)``);
2. the environment: ``BOUNDARY_<SECTION>__<KEY>`` (e.g. ``BOUNDARY_SCHEDULER__INTERVAL_MS=200``)
   beats the guide's flat variables (:data:`FLAT_ENV_VARS`: ``REDIS_URL``, ``REDIS_HOST``,
   ``WORKER_COUNT`` ...);
3. the TOML file (``config/dev.toml`` by default, see :func:`resolve_config_file`);
4. the defaults.

``REDIS_URL`` (``redis.url``), when set, wins over host/port/password/database in
:meth:`RedisSettings.effective_url`. Empty environment variables count as unset.
``BoundarySettings()`` reads the environment and the defaults only; :func:`load_settings`
adds the config file and turns every problem into a :class:`SettingsError` naming the key.

Modules: ``models`` (the sections), ``sources`` (the root model, the sources and loading),
``errors`` (:class:`SettingsError` and its text).
"""

from boundary_celery.settings.errors import SettingsError
from boundary_celery.settings.models import (
    RETRY_PRESETS,
    AdminSettings,
    LoggingSettings,
    RedisSettings,
    RetrySettings,
    SchedulerSettings,
    StoreSettings,
    WorkerSettings,
)
from boundary_celery.settings.sources import (
    ENV_PREFIX,
    FLAT_ENV_VARS,
    BoundarySettings,
    load_settings,
    resolve_config_file,
)

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
