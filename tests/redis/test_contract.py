"""RedisStorage against the shared Storage contract suite of flare-core."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flare_core import FlareConfig
from flare_core.testing import StorageContract
from flare_redis import RedisStorage


class TestRedisStorage(StorageContract):
    @pytest.fixture
    async def storage(self, redis_url: str) -> AsyncIterator[RedisStorage]:
        store = RedisStorage(FlareConfig(redis_url=redis_url))
        await store.start()
        yield store
        await store.close()
