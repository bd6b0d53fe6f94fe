"""Fixtures for flare-sqlite: a started SQLiteStorage on a real file in tmp_path."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flare_core.models import FlareLogEntry
from flare_sqlite import SQLiteStorage

# A fixed "now" in the middle of an hour, so hour buckets are predictable.
NOW = datetime(2026, 3, 14, 15, 30, 0, tzinfo=UTC)

_counter = itertools.count()


def make_entry(**fields: Any) -> FlareLogEntry:
    """An entry with sensible defaults; every field may be overridden."""
    number = next(_counter)
    values: dict[str, Any] = {
        "timestamp": NOW - timedelta(seconds=1),
        "level": "ERROR",
        "event": "unhandled_exception",
        "message": f"something failed #{number}",
        "endpoint": "/items",
        "route": "/items",
        "http_method": "GET",
        "http_status": 500,
        "fingerprint": "fp-default",
        "exception_type": "builtins.RuntimeError",
        "error": "RuntimeError: boom",
    }
    values.update(fields)
    return FlareLogEntry(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "flare.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[SQLiteStorage]:
    store = SQLiteStorage(db_path)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def entry() -> Callable[..., FlareLogEntry]:
    return make_entry
