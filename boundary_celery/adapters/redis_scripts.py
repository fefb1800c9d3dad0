"""The packaged Lua scripts and how they are called: by SHA, loaded on first use.

Only the Redis adapters build script calls (:mod:`boundary_celery.adapters.redis_store`,
and :mod:`boundary_celery.adapters.deliveries` the claim); everyone else receives a
:class:`ScriptCall` and runs it, or queues it on a pipeline, without ever seeing its
KEYS or ARGV.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any

import redis

Arg = str | int | float


@dataclass(frozen=True)
class Script:
    """A Lua script run by SHA; its source is sent once per server when the SHA is unknown."""

    name: str
    source: str

    @cached_property
    def sha(self) -> str:
        """The script's SHA1 (computed once: it is on every job's path)."""
        return hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


@cache
def script(name: str) -> Script:
    """The packaged Lua script ``name`` (``adapters/lua/<name>.lua``)."""
    source = resources.files("boundary_celery.adapters").joinpath(f"lua/{name}.lua").read_text()
    return Script(name, source)


@dataclass(frozen=True)
class ScriptCall:
    """One prepared script invocation: run it on a client, or queue it on a pipeline."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[Arg, ...]

    def run(self, client: Any) -> Any:
        """Run now (one round trip; the source is sent only if the server lacks it)."""
        return self.script(client, self.keys, self.args)

    def command(self) -> tuple[Arg, ...]:
        """The ``EVALSHA`` command as arguments for a pipeline or a publish batch; the
        caller makes sure the script is loaded (:meth:`load`) or falls back to
        :meth:`run` on ``NoScriptError``."""
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)

    def queue(self, pipe: Any) -> None:
        """Add the ``EVALSHA`` command to ``pipe`` (see :meth:`command`)."""
        pipe.execute_command(*self.command())

    def load(self, client: Any) -> None:
        """Make sure the server knows the script (before queueing it on pipelines)."""
        client.script_load(self.script.source)
