"""The in-memory storage honours the storage contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flare_core import MemoryStorage
from flare_core.testing import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[MemoryStorage]:
        store = MemoryStorage()
        await store.start()
        yield store
        await store.close()
