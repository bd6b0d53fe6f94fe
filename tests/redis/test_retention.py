"""Retention by count and by age: the stream, indexes and groups shrink together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from flare_core import GroupQuery, LogQuery
from flare_core.models import utcnow
from flare_redis import RedisStorage

from .conftest import NOW, make_entry

FOREVER = timedelta(days=365 * 100)


async def test_count_cap_keeps_newest(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    for start in range(0, 1000, 100):
        batch = [make_entry(-(start + i), message=str(start + i)) for i in range(100)]
        await storage.write_batch(batch)
        await storage.apply_retention(555, FOREVER, now=NOW)
    length = await raw.xlen(storage.keys.stream)
    stats = await storage.stats(now=NOW)
    newest = await storage.query(LogQuery(limit=1))
    assert 555 <= length <= 600
    assert stats.total == length
    assert await raw.zcard(storage.keys.all) == length
    assert newest.items[0].message == "999"


async def test_writes_trim_beyond_hard_cap(
    make_storage: Callable[..., Any], raw: aioredis.Redis
) -> None:
    storage: RedisStorage = await make_storage(max_entries=555)
    for start in range(0, 1000, 100):
        await storage.write_batch([make_entry(-(start + i)) for i in range(100)])
    length = await raw.xlen(storage.keys.stream)
    assert 555 <= length <= storage.hard_cap
    assert await raw.zcard(storage.keys.all) == length


async def test_retention_returns_removed_count(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(i) for i in range(30)])
    removed = await storage.apply_retention(10, FOREVER, now=NOW)
    again = await storage.apply_retention(10, FOREVER, now=NOW)
    assert removed == 20
    assert again == 0


async def test_age_removes_old_timestamps(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(7200, message="old", level="WARNING"),
            make_entry(60, message="new"),
        ]
    )
    removed = await storage.apply_retention(1000, timedelta(hours=1), now=NOW)
    page = await storage.query(LogQuery())
    warnings = await storage.query(LogQuery(level="WARNING"))
    stats = await storage.stats(now=NOW)
    assert removed == 1
    assert [entry.message for entry in page.items] == ["new"]
    assert warnings.items == []
    assert stats.warnings_24h == 0
    assert stats.total == 1


async def test_age_removes_old_stream_ids(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    old_ms = int((utcnow() - timedelta(days=3)).timestamp() * 1000)
    await raw.xadd(storage.keys.stream, {"e": "{}"}, id=f"{old_ms}-0")
    await raw.xadd(storage.keys.stream, {"e": "{}"}, id=f"{old_ms}-1")
    fresh = make_entry(0, message="fresh")
    fresh.timestamp = utcnow()
    await storage.write_batch([fresh])
    before = await storage.get(f"{old_ms}-0")
    removed = await storage.apply_retention(1000, timedelta(days=1))
    assert before is not None
    assert removed == 2
    assert await storage.get(f"{old_ms}-0") is None
    assert await raw.xlen(storage.keys.stream) == 1


async def test_age_removes_empty_groups(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    await storage.write_batch(
        [
            make_entry(7200, fingerprint="gone"),
            make_entry(7300, fingerprint="kept"),
            make_entry(60, fingerprint="kept"),
        ]
    )
    await storage.apply_retention(1000, timedelta(hours=1), now=NOW)
    groups = await storage.query_groups(GroupQuery())
    kept = await storage.get_group("kept")
    assert [group.fingerprint for group in groups.items] == ["kept"]
    assert await storage.get_group("gone") is None
    assert kept is not None
    assert kept.count == 1
    assert await raw.exists(storage.keys.fingerprint("gone")) == 0


async def test_retention_removes_index_members(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    await storage.write_batch(
        [
            make_entry(
                7200, http_status=500, endpoint="/x", event="custom", fingerprint="g"
            )
        ]
    )
    await storage.apply_retention(1000, timedelta(hours=1), now=NOW)
    keys = {key.decode() async for key in raw.scan_iter(match="*")}
    # The empty stream stays, and write tokens expire on their own.
    leftover = {key for key in keys if ":tok:" not in key} - {storage.keys.stream}
    assert leftover == set()


async def test_retention_runs_in_steps(
    storage: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flare_redis.storage.RETENTION_STEP", 7)
    await storage.write_batch([make_entry(i) for i in range(40)])
    removed = await storage.apply_retention(5, FOREVER, now=NOW)
    stats = await storage.stats(now=NOW)
    assert removed == 35
    assert stats.total == 5
