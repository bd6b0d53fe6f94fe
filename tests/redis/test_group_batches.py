"""Group upkeep in the write script, which applies each group once per call.

The stored groups must equal those that writing entry by entry gives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from flare_core import FlareLogEntry, GroupQuery
from flare_redis import RedisStorage, encode_queue_item

from .conftest import NOW, make_entry

SORTS = ("last_seen", "count", "first_seen")
SETS = ("unresolved", "resolved", "ignored", "visible")
FINGERPRINTS = ("new", "grown", "stale", "resolved", "ignored")


def setup_entries() -> list[FlareLogEntry]:
    """Entries that exist before the batch, for groups that are not new."""
    return [
        make_entry(50, fingerprint="grown"),
        make_entry(5, fingerprint="stale"),
        make_entry(45, fingerprint="resolved"),
        make_entry(35, fingerprint="ignored"),
    ]


def batch_entries() -> list[FlareLogEntry]:
    """One batch with several entries per group and timestamps out of order."""
    return [
        # A new group: the first entry gives the title and first_seen, the
        # last of the two entries at 10 s gives latest and level.
        make_entry(40, fingerprint="new", error="KeyError: first"),
        make_entry(10, fingerprint="new", level="WARNING", error="KeyError: a"),
        make_entry(30, fingerprint="new", error="KeyError: b"),
        make_entry(10, fingerprint="new", error="KeyError: c"),
        make_entry(60, fingerprint="new"),
        make_entry(25, fingerprint=None, message="no group"),
        # An existing group gets older and newer entries.
        make_entry(55, fingerprint="grown", level="WARNING"),
        make_entry(20, fingerprint="grown", level="WARNING"),
        make_entry(30, fingerprint="grown"),
        # Entries older than the stored last_seen change only the count.
        make_entry(15, fingerprint="stale", level="WARNING"),
        make_entry(8, fingerprint="stale", level="WARNING"),
        # A resolved group regresses, with its stored last_seen kept.
        make_entry(50, fingerprint="resolved", level="WARNING"),
        make_entry(46, fingerprint="resolved"),
        # An ignored group counts, with a tie on its stored last_seen.
        make_entry(35, fingerprint="ignored", level="WARNING"),
        make_entry(40, fingerprint="ignored"),
        make_entry(12, fingerprint=None, message="no group either"),
    ]


async def snapshot(
    raw: aioredis.Redis, storage: RedisStorage, entries: list[FlareLogEntry]
) -> dict[str, Any]:
    """Read every group hash, group sorted set and fingerprint index.

    Stream ids differ between stores, so ids become positions in ``entries``.
    """
    position = {entry.id: index for index, entry in enumerate(entries)}
    state: dict[str, Any] = {}
    for fingerprint in FINGERPRINTS:
        fields: dict[Any, Any] = await raw.hgetall(storage.keys.group(fingerprint))
        state[f"group {fingerprint}"] = [
            (name.decode(), position[value.decode()] if name == b"latest" else value)
            for name, value in fields.items()
        ]
        members: list[Any] = await raw.zrange(
            storage.keys.fingerprint(fingerprint), 0, -1, withscores=True
        )
        state[f"index {fingerprint}"] = [
            (position[member.decode()], score) for member, score in members
        ]
    for sort in SORTS:
        for status in SETS:
            key = storage.keys.group_sort(sort, None if status == "visible" else status)
            state[f"{sort}:{status}"] = await raw.zrange(key, 0, -1, withscores=True)
    return state


async def assert_placed(raw: aioredis.Redis, storage: RedisStorage) -> None:
    """Check where each group is in the group sorted sets.

    A group is in the sets of its status, and of 'visible' unless ignored,
    with the scores of its hash, and in no other set.
    """
    for fingerprint in FINGERPRINTS:
        fields: dict[Any, Any] = await raw.hgetall(storage.keys.group(fingerprint))
        status = fields[b"status"].decode()
        expected = {
            "last_seen": float(fields[b"last"]),
            "count": float(fields[b"count"]),
            "first_seen": float(fields[b"first"]),
        }
        for sort in SORTS:
            for name in SETS:
                key = storage.keys.group_sort(sort, None if name == "visible" else name)
                score = await raw.zscore(key, fingerprint)
                placed = name == status or (name == "visible" and status != "ignored")
                where = f"{fingerprint} in {sort}:{name}"
                assert score == (expected[sort] if placed else None), where


async def write_store(
    make_storage: Callable[..., Any], name: str, batched: bool
) -> tuple[RedisStorage, list[FlareLogEntry]]:
    """Write the setup and the batch into a store of its own keys."""
    storage: RedisStorage = await make_storage(
        stream_key=f"{name}:logs", queue_key=f"{name}:queue"
    )
    setup = setup_entries()
    await storage.write_batch(setup)
    await storage.set_group_status("resolved", "resolved")
    await storage.set_group_status("ignored", "ignored")
    batch = batch_entries()
    if batched:
        await storage.write_batch(batch)
    else:
        for entry in batch:
            await storage.write_batch([entry])
    return storage, setup + batch


async def test_batch_groups_equal_single_writes(
    make_storage: Callable[..., Any], raw: aioredis.Redis
) -> None:
    single, single_entries = await write_store(make_storage, "single", False)
    batched, batched_entries = await write_store(make_storage, "batched", True)
    await assert_placed(raw, single)
    await assert_placed(raw, batched)
    expected = await snapshot(raw, single, single_entries)
    actual = await snapshot(raw, batched, batched_entries)
    for name in expected:
        assert actual[name] == expected[name], name


async def test_batch_groups_fields(
    make_storage: Callable[..., Any], raw: aioredis.Redis
) -> None:
    storage, entries = await write_store(make_storage, "batched", True)
    new = await storage.get_group("new")
    assert new is not None
    assert new.count == 5
    assert new.title == "KeyError: first"
    assert new.first_seen == NOW - timedelta(seconds=40)
    assert new.last_seen == NOW - timedelta(seconds=10)
    assert new.latest_entry_id == entries[7].id
    assert new.level == "ERROR"

    grown = await storage.get_group("grown")
    assert grown is not None
    assert grown.count == 4
    assert grown.first_seen == NOW - timedelta(seconds=50)
    assert grown.last_seen == NOW - timedelta(seconds=20)
    assert grown.latest_entry_id == entries[11].id
    assert grown.level == "WARNING"

    stale = await storage.get_group("stale")
    assert stale is not None
    assert stale.count == 3
    assert stale.last_seen == NOW - timedelta(seconds=5)
    assert stale.latest_entry_id == entries[1].id
    assert stale.level == "ERROR"

    resolved = await storage.get_group("resolved")
    assert resolved is not None
    assert resolved.count == 3
    assert resolved.status == "unresolved"
    assert resolved.regression is True
    assert resolved.last_seen == NOW - timedelta(seconds=45)
    assert resolved.latest_entry_id == entries[2].id

    ignored = await storage.get_group("ignored")
    assert ignored is not None
    assert ignored.count == 3
    assert ignored.status == "ignored"
    assert ignored.latest_entry_id == entries[17].id
    assert ignored.level == "WARNING"

    visible = await storage.query_groups(GroupQuery(limit=10))
    assert sorted(group.fingerprint for group in visible.items) == [
        "grown",
        "new",
        "resolved",
        "stale",
    ]
    resolved_sets = [storage.keys.group_sort(sort, "resolved") for sort in SORTS]
    for key in resolved_sets:
        assert await raw.zcard(key) == 0, key


async def test_hard_cap_trim_after_groups(
    make_storage: Callable[..., Any], raw: aioredis.Redis
) -> None:
    # The script trims beyond the hard cap after the batch's group changes
    # are stored, so the removed entries leave the group too.
    storage: RedisStorage = await make_storage(max_entries=100)
    await storage.write_batch([make_entry(250 - i) for i in range(250)])
    length = await raw.xlen(storage.keys.stream)
    group = await storage.get_group("fp-default")
    score = await raw.zscore(storage.keys.group_sort("count", None), "fp-default")
    assert length == storage.hard_cap
    assert group is not None
    assert group.count == length
    assert score == length


async def test_repeated_token_counted_once(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    item = encode_queue_item(make_entry(5, fingerprint="once"), token="retry-1")
    await raw.lpush(storage.keys.queue, item, item)
    await storage.write_batch([make_entry(1, fingerprint="once")])
    group = await storage.get_group("once")
    assert group is not None
    assert group.count == 2
    assert group.last_seen == NOW - timedelta(seconds=1)


async def test_many_groups_in_one_call(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    # More groups than the script puts into one ZADD.
    await storage.write_batch([make_entry(i, fingerprint=f"g{i}") for i in range(1200)])
    for sort in SORTS:
        for status in ("unresolved", "visible"):
            key = storage.keys.group_sort(sort, None if status == "visible" else status)
            assert await raw.zcard(key) == 1200, key
    counts = storage.keys.group_sort("count", None)
    assert await raw.zrangebyscore(counts, 2, "+inf") == []
