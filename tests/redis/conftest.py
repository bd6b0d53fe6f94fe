"""Fixtures for the Redis backend: RedisStorage on the suite's redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from flare_core import FlareConfig, FlareLogEntry
from flare_redis import RedisStorage

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def make_entry(seconds_ago: float = 0, **fields: Any) -> FlareLogEntry:
    """Build an entry ``seconds_ago`` before ``NOW``, with a fingerprint by default."""
    fields.setdefault("fingerprint", "fp-default")
    fields.setdefault("message", "boom")
    return FlareLogEntry(timestamp=NOW - timedelta(seconds=seconds_ago), **fields)


@pytest.fixture
async def make_storage(redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Build and start RedisStorage instances; all are closed at the test's end."""
    started: list[RedisStorage] = []

    async def build(**options: Any) -> RedisStorage:
        storage = RedisStorage(FlareConfig(redis_url=redis_url, **options))
        await storage.start()
        started.append(storage)
        return storage

    yield build
    for storage in started:
        await storage.close()


@pytest.fixture
async def storage(make_storage: Callable[..., Any]) -> RedisStorage:
    result: RedisStorage = await make_storage()
    return result


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the test's Redis, to inspect keys directly."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
