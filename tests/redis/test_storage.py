"""RedisStorage against a real redis-server: every Storage method."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from flare_core import (
    FlareConfig,
    GroupQuery,
    InvalidCursor,
    LogQuery,
    StorageUnavailable,
    testing,
)
from flare_core.storage import Storage, encode_cursor
from flare_redis import RedisStorage

from .conftest import NOW, make_entry


async def test_storage_satisfies_protocol(storage: RedisStorage) -> None:
    assert isinstance(storage, Storage)


async def test_write_sets_stream_ids(storage: RedisStorage) -> None:
    entries = [make_entry(i) for i in range(3)]
    await storage.write_batch(entries)
    assert all(entry.id and "-" in entry.id for entry in entries)


async def test_write_uses_tagged_keys(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    await storage.write_batch([make_entry()])
    assert await raw.xlen("{flare}:logs") == 1
    assert await raw.llen("{flare}:queue") == 0


async def test_get_round_trips(storage: RedisStorage) -> None:
    entry = make_entry(message="hello", http_status=500, context={"user": {"id": 7}})
    await storage.write_batch([entry])
    assert entry.id is not None
    stored = await storage.get(entry.id)
    assert stored == entry


@pytest.mark.parametrize("entry_id", ["0-1", "nope", "", "1-2-3", "9" * 30 + "-0"])
async def test_get_unknown_returns_none(storage: RedisStorage, entry_id: str) -> None:
    assert await storage.get(entry_id) is None


async def test_query_newest_first(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(10 - i, message=f"m{i}") for i in range(5)])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["m4", "m3", "m2", "m1", "m0"]
    assert page.next_cursor is None


async def test_query_orders_by_timestamp(storage: RedisStorage) -> None:
    await storage.write_batch(
        [make_entry(5, message="older"), make_entry(1, message="newer")]
    )
    await storage.write_batch([make_entry(60, message="late but old")])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["newer", "older", "late but old"]


FILTER_CASES = [
    ({"level": "WARNING"}, {"w"}),
    ({"event": "custom"}, {"c"}),
    ({"status": 404}, {"n"}),
    ({"endpoint": "/a"}, {"a", "n"}),
    ({"fingerprint": "fp-x"}, {"x"}),
    ({"endpoint": "/a", "status": 404}, {"n"}),
    ({"level": "ERROR", "event": "custom"}, {"c"}),
    ({"level": "WARNING", "event": "custom"}, set()),
    ({"endpoint": "/missing"}, set()),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
async def test_query_filters(
    storage: RedisStorage, filters: dict[str, object], expected: set[str]
) -> None:
    await storage.write_batch(
        [
            make_entry(1, message="w", level="WARNING"),
            make_entry(2, message="c", event="custom"),
            make_entry(3, message="n", http_status=404, endpoint="/a"),
            make_entry(4, message="a", endpoint="/a"),
            make_entry(5, message="x", fingerprint="fp-x"),
        ]
    )
    page = await storage.query(LogQuery(**filters))
    assert {entry.message for entry in page.items} == expected


async def test_query_time_range(storage: RedisStorage) -> None:
    await storage.write_batch(
        [make_entry(minutes * 60, message=str(minutes)) for minutes in range(5)]
    )
    page = await storage.query(
        LogQuery(since=NOW - timedelta(minutes=3), until=NOW - timedelta(minutes=1))
    )
    assert [entry.message for entry in page.items] == ["2", "3"]


async def test_query_since_is_inclusive(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(0, message="edge")])
    page = await storage.query(LogQuery(since=NOW))
    assert [entry.message for entry in page.items] == ["edge"]


async def test_query_until_is_exclusive(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(0, message="edge")])
    page = await storage.query(LogQuery(until=NOW))
    assert page.items == []


async def test_cursor_pages_cover_all(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(i, message=str(i)) for i in range(23)])
    seen: list[str] = []
    cursor = None
    while True:
        page = await storage.query(LogQuery(limit=5, cursor=cursor))
        seen.extend(entry.message for entry in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [str(i) for i in range(23)]


async def test_cursor_pages_with_equal_timestamps(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(0, message=str(i)) for i in range(12)])
    first = await storage.query(LogQuery(limit=5))
    second = await storage.query(LogQuery(limit=5, cursor=first.next_cursor))
    third = await storage.query(LogQuery(limit=5, cursor=second.next_cursor))
    ids = [entry.id for page in (first, second, third) for entry in page.items]
    assert len(ids) == 12
    assert len(set(ids)) == 12
    assert third.next_cursor is None


async def test_cursor_stable_while_writing(storage: RedisStorage) -> None:
    await storage.write_batch(
        [make_entry(100 + i, message=f"old{i}") for i in range(10)]
    )
    first = await storage.query(LogQuery(limit=4))
    await storage.write_batch([make_entry(i, message=f"new{i}") for i in range(5)])
    rest: list[str] = []
    cursor = first.next_cursor
    while cursor:
        page = await storage.query(LogQuery(limit=4, cursor=cursor))
        rest.extend(entry.message for entry in page.items)
        cursor = page.next_cursor
    assert [entry.message for entry in first.items] == [f"old{i}" for i in range(4)]
    assert rest == [f"old{i}" for i in range(4, 10)]


@pytest.mark.parametrize("cursor", ["%%%", "e30", encode_cursor({"id": "x", "s": "1"})])
async def test_invalid_cursor_raises(storage: RedisStorage, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await storage.query(LogQuery(cursor=cursor))


# Every query of the shared contract, plus regex and printf syntax; the
# empty query means no filter, which another test covers.
HOSTILE_QUERIES = [
    *(query for query in testing.HOSTILE_QUERIES if query),
    "[a-z]+",
    "%s",
]


@pytest.mark.parametrize("needle", HOSTILE_QUERIES)
async def test_search_hostile_query_matches(storage: RedisStorage, needle: str) -> None:
    await storage.write_batch(
        [
            make_entry(1, message=f"before {needle} after"),
            make_entry(2, message="other"),
        ]
    )
    page = await storage.query(LogQuery(q=needle))
    assert [entry.message for entry in page.items] == [f"before {needle} after"]


@pytest.mark.parametrize("needle", ["", "   ", "zzz-nothing"])
async def test_search_empty_or_unmatched(storage: RedisStorage, needle: str) -> None:
    await storage.write_batch([make_entry(1, message="something")])
    page = await storage.query(LogQuery(q=needle))
    expected = 1 if needle == "" else 0
    assert len(page.items) == expected


async def test_search_is_case_insensitive(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(1, message="Ünïcode FAILURE")])
    page = await storage.query(LogQuery(q="ünïcode failure"))
    assert len(page.items) == 1


async def test_search_covers_error_and_endpoint(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(1, message="m", error="KeyError: 'token'"),
            make_entry(2, message="m", endpoint="/api/orders"),
        ]
    )
    by_error = await storage.query(LogQuery(q="keyerror"))
    by_endpoint = await storage.query(LogQuery(q="/API/ORD"))
    assert len(by_error.items) == 1
    assert len(by_endpoint.items) == 1


async def test_search_scans_in_bounded_pages(
    storage: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flare_redis.storage.SCAN_BUDGET", 7)
    await storage.write_batch(
        [make_entry(i, message=f"plain {i}") for i in range(1, 20)]
    )
    await storage.write_batch([make_entry(100, message="needle here")])
    first = await storage.query(LogQuery(q="needle"))
    assert first.items == []
    assert first.next_cursor is not None
    found = []
    cursor = first.next_cursor
    while cursor:
        page = await storage.query(LogQuery(q="needle", cursor=cursor))
        found.extend(page.items)
        cursor = page.next_cursor
    assert [entry.message for entry in found] == ["needle here"]


async def test_stats_counts(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(60, level="ERROR"),
            make_entry(120, level="ERROR"),
            make_entry(30, level="WARNING"),
            make_entry(25 * 3600, level="ERROR"),
        ]
    )
    stats = await storage.stats(now=NOW)
    assert stats.errors_24h == 2
    assert stats.warnings_24h == 1
    assert stats.total == 4
    assert stats.latest_error_at == NOW - timedelta(seconds=60)
    assert stats.dropped == 0


async def test_stats_empty(storage: RedisStorage) -> None:
    stats = await storage.stats(now=NOW)
    assert stats.total == 0
    assert stats.latest_error_at is None


async def test_timeline_buckets(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(60, level="ERROR"),
            make_entry(90, level="WARNING"),
            make_entry(3600, level="ERROR"),
            make_entry(5 * 3600, level="ERROR"),
        ]
    )
    buckets = await storage.timeline(hours=3, now=NOW)
    assert [bucket.start.hour for bucket in buckets] == [10, 11, 12]
    assert [bucket.errors for bucket in buckets] == [0, 1, 1]
    assert [bucket.warnings for bucket in buckets] == [0, 0, 1]


async def test_groups_merge_entries(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(
                30, fingerprint="g1", exception_type="ValueError", error="ValueError: x"
            ),
            make_entry(10, fingerprint="g1", level="WARNING"),
            make_entry(20, fingerprint="g1"),
        ]
    )
    group = await storage.get_group("g1")
    assert group is not None
    assert group.count == 3
    assert group.title == "ValueError: x"
    assert group.first_seen == NOW - timedelta(seconds=30)
    assert group.last_seen == NOW - timedelta(seconds=10)
    assert group.level == "WARNING"
    assert group.status == "unresolved"


async def test_group_latest_entry_id(storage: RedisStorage) -> None:
    entries = [make_entry(30, fingerprint="g1"), make_entry(10, fingerprint="g1")]
    await storage.write_batch(entries)
    group = await storage.get_group("g1")
    assert group is not None
    assert group.latest_entry_id == entries[1].id


async def test_unknown_group_is_none(storage: RedisStorage) -> None:
    assert await storage.get_group("nope") is None
    assert await storage.set_group_status("nope", "resolved") is None


async def test_resolved_group_regresses(storage: RedisStorage) -> None:
    await storage.write_batch([make_entry(20, fingerprint="g1")])
    resolved = await storage.set_group_status("g1", "resolved")
    await storage.write_batch([make_entry(10, fingerprint="g1")])
    group = await storage.get_group("g1")
    assert resolved is not None
    assert resolved.status == "resolved"
    assert group is not None
    assert group.status == "unresolved"
    assert group.regression is True


async def test_ignored_group_hidden_but_counting(storage: RedisStorage) -> None:
    await storage.write_batch(
        [make_entry(20, fingerprint="g1"), make_entry(20, fingerprint="g2")]
    )
    await storage.set_group_status("g1", "ignored")
    await storage.write_batch([make_entry(10, fingerprint="g1")])
    visible = await storage.query_groups(GroupQuery())
    ignored = await storage.query_groups(GroupQuery(status="ignored"))
    assert [group.fingerprint for group in visible.items] == ["g2"]
    assert [group.fingerprint for group in ignored.items] == ["g1"]
    assert ignored.items[0].count == 2


async def test_invalid_group_status_raises(storage: RedisStorage) -> None:
    with pytest.raises(ValueError, match="invalid group status"):
        await storage.set_group_status("g1", "deleted")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("last_seen", ["b", "c", "a"]),
        ("count", ["c", "a", "b"]),
        ("first_seen", ["b", "a", "c"]),
    ],
)
async def test_groups_sorted(
    storage: RedisStorage, sort: str, expected: list[str]
) -> None:
    await storage.write_batch(
        [
            make_entry(50, fingerprint="a"),
            make_entry(40, fingerprint="a"),
            make_entry(100, fingerprint="c"),
            make_entry(90, fingerprint="c"),
            make_entry(30, fingerprint="c"),
            make_entry(10, fingerprint="b"),
        ]
    )
    page = await storage.query_groups(GroupQuery(sort=sort))  # type: ignore[arg-type]
    assert [group.fingerprint for group in page.items] == expected


async def test_groups_filter_level_and_title(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(5, fingerprint="e", message="Disk Full"),
            make_entry(5, fingerprint="w", level="WARNING", message="slow"),
        ]
    )
    warnings = await storage.query_groups(GroupQuery(level="WARNING"))
    by_title = await storage.query_groups(GroupQuery(q="disk f"))
    assert [group.fingerprint for group in warnings.items] == ["w"]
    assert [group.fingerprint for group in by_title.items] == ["e"]


async def test_group_cursor_pages_ties(storage: RedisStorage) -> None:
    await storage.write_batch(
        [make_entry(5, fingerprint=f"g{i:02}") for i in range(11)]
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = await storage.query_groups(
            GroupQuery(sort="count", limit=3, cursor=cursor)
        )
        seen.extend(group.fingerprint for group in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"g{i:02}" for i in range(11)]
    assert len(seen) == 11


async def test_group_invalid_cursor_raises(storage: RedisStorage) -> None:
    with pytest.raises(InvalidCursor):
        await storage.query_groups(GroupQuery(cursor=encode_cursor({"v": "x", "f": 1})))


async def test_sparklines(storage: RedisStorage) -> None:
    await storage.write_batch(
        [
            make_entry(60, fingerprint="g1"),
            make_entry(120, fingerprint="g1"),
            make_entry(3600, fingerprint="g1"),
            make_entry(60, fingerprint="g2"),
        ]
    )
    lines = await storage.group_sparklines(["g1", "g2", "g3"], hours=3, now=NOW)
    assert lines == {"g1": [0, 1, 2], "g2": [0, 0, 1], "g3": [0, 0, 0]}


async def test_unstarted_storage_unavailable(redis_url: str) -> None:
    storage = RedisStorage(FlareConfig(redis_url=redis_url))
    with pytest.raises(StorageUnavailable, match="not started"):
        await storage.stats()


async def test_closed_storage_restarts(storage: RedisStorage) -> None:
    await storage.close()
    await storage.start()
    await storage.write_batch([make_entry(message="again")])
    page = await storage.query(LogQuery())
    assert [entry.message for entry in page.items] == ["again"]


async def test_foreign_stream_entry_ignored(
    storage: RedisStorage, raw: aioredis.Redis
) -> None:
    foreign_id = (await raw.xadd(storage.keys.stream, {"other": "field"})).decode()
    assert await storage.get(foreign_id) is None
