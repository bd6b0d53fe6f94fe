"""SQLiteStorage against the shared Storage contract suite of flare-core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flare_core.testing import StorageContract
from flare_sqlite import SQLiteStorage


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
        store = SQLiteStorage(tmp_path / "contract.db")
        await store.start()
        yield store
        await store.close()
