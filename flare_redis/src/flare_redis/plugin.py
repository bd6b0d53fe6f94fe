"""The ``redis`` entry point: build ``RedisStorage`` for ``storage_backend="redis"``."""

from __future__ import annotations

from flare_core import FlareConfig, FlareConfigError, hookimpl

from .storage import RedisStorage

__all__ = ["flare_storage"]


@hookimpl
def flare_storage(config: FlareConfig, backend: str) -> RedisStorage | None:
    if backend != "redis":
        return None
    if not config.redis_url:
        raise FlareConfigError(
            "The redis backend requires redis_url: pass "
            "redis_url='redis://host:6379/0' to setup() or set FLARE_REDIS_URL.",
            option="redis_url",
        )
    return RedisStorage(config)
