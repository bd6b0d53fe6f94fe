"""Connecting to Redis or Redis Cluster, running Flare's Lua scripts, and errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flare_core import StorageError, StorageUnavailable

__all__ = ["Client", "Scripts", "connect", "redacted", "translate_errors"]

Client = Redis | RedisCluster

MIN_VERSION = (6, 2)
# A request waits this long for a free pooled connection before it fails.
POOL_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
# A write script with a batch of large entries may run for a while, so a
# read waits this long before the connection counts as broken.
SOCKET_TIMEOUT_SECONDS = 30.0


def redacted(url: str) -> str:
    """Return ``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


@asynccontextmanager
async def translate_errors(url: str, action: str) -> AsyncIterator[None]:
    """Turn redis-py's exceptions into ``StorageUnavailable`` or ``StorageError``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StorageUnavailable(
            f"Redis at {redacted(url)} is unreachable ({action}): {exc}",
            backend="redis",
        ) from exc
    except RedisError as exc:
        raise StorageError(
            f"Redis at {redacted(url)} failed to {action}: {exc}", backend="redis"
        ) from exc


def _options(password: str | None, max_connections: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        # One quick retry replaces a pooled connection that a server restart
        # closed. The worker retries longer outages itself, with backoff.
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    }
    if password is not None:
        options["password"] = password
    return options


async def connect(
    url: str, password: str | None, max_connections: int
) -> tuple[Client, bool]:
    """Open a client for ``url`` and return it with whether it is a cluster.

    Raises ``StorageError`` when the server runs a Redis older than 6.2,
    which lacks ``RPOP`` with a count, exclusive ``XRANGE`` ranges and
    ``ZRANGE ... BYSCORE REV``.
    """
    options = _options(password, max_connections)
    pool_options = {
        key: value for key, value in options.items() if key != "max_connections"
    }
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT_SECONDS,
        **pool_options,
    )
    client = Redis.from_pool(pool)
    try:
        async with translate_errors(url, "read the server version"):
            server = await client.info("server")
            cluster = await client.info("cluster")
        _check_version(url, str(server.get("redis_version", "0")))
    except BaseException:
        await client.aclose()
        raise
    if not cluster.get("cluster_enabled"):
        return client, False

    await client.aclose()
    cluster_client = RedisCluster.from_url(url, **options)
    try:
        async with translate_errors(url, "connect to the cluster"):
            await cluster_client.initialize()
    except BaseException:
        await cluster_client.aclose()
        raise
    return cluster_client, True


def _check_version(url: str, version: str) -> None:
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < MIN_VERSION:
        raise StorageError(
            f"Redis >= 6.2 required: the server at {redacted(url)} runs Redis "
            f"{version}. Upgrade it, or use the sqlite backend.",
            backend="redis",
        )


class Scripts:
    """Flare's Lua scripts, each run by SHA1 and sent in full when not cached."""

    def __init__(self) -> None:
        package = files("flare_redis") / "lua"
        common = (package / "common.lua").read_text(encoding="utf-8")
        self.sources: dict[str, str] = {}
        for name in ("write", "retention", "status", "query", "counts"):
            body = (package / f"{name}.lua").read_text(encoding="utf-8")
            self.sources[name] = common + body
        self.shas = {
            name: hashlib.sha1(source.encode()).hexdigest()
            for name, source in self.sources.items()
        }

    async def run(
        self, client: Client, name: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.evalsha(self.shas[name], len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.sources[name], len(keys), *keys, *args)
