"""The queue list: items from other processes, invalid items, retried batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from flare_core import GroupQuery, LogQuery
from flare_redis import RedisStorage, encode_queue_item

from .conftest import NOW, make_entry


async def test_foreign_items_drain_on_write(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    await raw.lpush(
        storage.keys.queue, encode_queue_item(make_entry(5, message="pushed"))
    )
    await storage.write_batch([make_entry(1, message="own")])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["own", "pushed"]
    assert await raw.llen(storage.keys.queue) == 0


async def test_foreign_items_drain_on_retention(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    await raw.lpush(
        storage.keys.queue, encode_queue_item(make_entry(5, fingerprint="far"))
    )
    await storage.apply_retention(100, timedelta(days=36500), now=NOW)
    group = await storage.get_group("far")
    assert group is not None
    assert group.count == 1


async def test_invalid_items_set_aside(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    bad = [
        b"not json",
        b'{"ts": "x"}\n{}',
        b'{"ts": "nan", "lv": "ERROR"}\n{}',
        b'{"ts": 5, "lv": "ERROR"}\n{}',
        # An integer too large for a double, which ZADD rejects.
        b'{"ts": "' + b"9" * 400 + b'", "lv": "ERROR", "fp": "big"}\n{}',
        # After the year 9999, which no reader can turn into a date.
        b'{"ts": "' + b"9" * 18 + b'", "lv": "ERROR", "fp": "far"}\n{}',
        b'{"ts": "-' + b"9" * 18 + b'", "lv": "ERROR", "fp": "far"}\n{}',
        b'{"ts": "1", "lv": "INFO"}\n{}',
        b"[1, 2]\n{}",
    ]
    await raw.lpush(storage.keys.queue, *bad)
    await storage.write_batch([make_entry(message="good")])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["good"]
    assert sorted(await raw.lrange(storage.keys.invalid, 0, -1)) == sorted(bad)
    # Readers that turn scores into dates still work.
    groups = await storage.query_groups(GroupQuery())
    assert "far" not in {group.fingerprint for group in groups.items}
    assert (await storage.stats()).total == 1


async def test_retried_batch_stored_once(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    batch = [make_entry(i, message=str(i)) for i in range(3)]
    # A first attempt reaches Redis but its reply is lost, so the entries
    # keep no id and the worker writes the same batch again.
    items = [encode_queue_item(entry, storage._token(entry)) for entry in batch]
    keys = [storage.keys.stream, storage.keys.queue]
    lost = await storage._script("write", keys, [0, 0, 60, *items])
    await storage.write_batch(batch)
    assert await raw.xlen(storage.keys.stream) == 3
    assert [entry.id for entry in batch] == [lost[i].decode() for i in range(1, 6, 2)]


async def test_foreign_token_item_drains(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    item = encode_queue_item(make_entry(5, message="tokened"), token="external-1")
    await raw.lpush(storage.keys.queue, item, item)
    await storage.apply_retention(100, timedelta(days=36500), now=NOW)
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["tokened"]


async def test_invalid_entry_json_skipped(
    storage: RedisStorage, raw: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    header = b'{"ts": "1000000", "lv": "ERROR", "ev": "custom"}'
    await raw.lpush(storage.keys.queue, header + b'\n{"level": "LOUD"}')
    await storage.write_batch([make_entry(message="valid")])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["valid"]
    assert "invalid stream entry" in caplog.text
