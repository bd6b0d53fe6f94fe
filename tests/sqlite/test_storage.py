"""SQLiteStorage on real files: every Storage method, as MemoryStorage behaves."""

from __future__ import annotations

import sqlite3
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from flare_core import InvalidCursor, MemoryStorage, Storage
from flare_core.models import GroupQuery, LogQuery
from flare_core.storage import encode_cursor, timeline_starts
from flare_sqlite import SQLiteStorage
from flare_sqlite.plugin import flare_storage
from tests.sqlite.conftest import NOW, make_entry


def test_is_a_storage(tmp_path: Path) -> None:
    assert isinstance(SQLiteStorage(tmp_path / "x.db"), Storage)


def test_plugin_answers_sqlite_only(tmp_path: Path) -> None:
    from flare_core import FlareConfig

    config = FlareConfig(sqlite_path=str(tmp_path / "p.db"))
    built = flare_storage(config=config, backend="sqlite")
    assert isinstance(built, SQLiteStorage)
    assert built.path == str(tmp_path / "p.db")
    assert flare_storage(config=config, backend="redis") is None


async def test_write_sets_string_ids_and_get_round_trips(
    storage: SQLiteStorage,
) -> None:
    entries = [
        make_entry(context={"n": index, "nested": {"ü": [1, 2]}}) for index in range(3)
    ]
    await storage.write_batch(entries)
    assert [entry.id for entry in entries] == ["1", "2", "3"]
    stored = await storage.get("2")
    assert stored == entries[1]
    assert stored is not None and stored.timestamp.tzinfo is not None
    assert await storage.get("999") is None
    assert await storage.get("not-a-number") is None
    assert await storage.get("") is None


async def test_empty_batch_is_a_no_op(storage: SQLiteStorage) -> None:
    await storage.write_batch([])
    assert (await storage.stats(now=NOW)).total == 0


async def test_unicode_and_a_megabyte_stack_trace_round_trip(
    storage: SQLiteStorage,
) -> None:
    trace = "".join(
        f'  File "/app/ü{line}.py", line {line}, in f — 🔥\n' for line in range(20_000)
    )
    trace = trace[: 1024 * 1024]
    entry = make_entry(
        message="naïve café 日本語 🔥 \u0000 nul",
        stack_trace=trace,
        context={"emoji": "🔥", "quote": "\"'", "nul": "a\u0000b"},
    )
    await storage.write_batch([entry])
    stored = await storage.get(entry.id or "")
    assert stored is not None
    assert stored.stack_trace == trace
    assert stored.message == entry.message
    assert stored.context == entry.context


async def test_lone_surrogates_are_cleaned_not_fatal(storage: SQLiteStorage) -> None:
    # Core cleans these before storage; an entry built by hand may still carry one.
    entries = [
        make_entry(message="ok"),
        make_entry(message="bad \udcff here"),
        make_entry(),
    ]
    await storage.write_batch(entries)
    stored = await storage.get(entries[1].id or "")
    assert stored is not None and stored.message.startswith("bad ")
    assert (await storage.stats(now=NOW)).total == 3


async def test_timestamps_are_utc_and_ordered_by_id(storage: SQLiteStorage) -> None:
    from datetime import datetime, timezone

    plus_two = timezone(timedelta(hours=2))
    entry = make_entry(
        timestamp=datetime(2026, 3, 14, 17, 0, 0, 123456, tzinfo=plus_two)
    )
    await storage.write_batch([entry])
    stored = await storage.get(entry.id or "")
    assert stored is not None
    assert stored.timestamp == datetime(2026, 3, 14, 15, 0, 0, 123456, tzinfo=UTC)
    assert stored.timestamp.utcoffset() == timedelta(0)


async def test_query_newest_first_and_cursor_pages(storage: SQLiteStorage) -> None:
    entries = [make_entry(timestamp=NOW - timedelta(minutes=60 - i)) for i in range(25)]
    await storage.write_batch(entries)
    seen: list[str] = []
    cursor = None
    while True:
        page = await storage.query(LogQuery(limit=10, cursor=cursor))
        seen.extend(item.id or "" for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [str(i) for i in range(25, 0, -1)]


async def test_cursor_pages_while_new_entries_arrive(storage: SQLiteStorage) -> None:
    await storage.write_batch([make_entry() for _ in range(30)])
    first = await storage.query(LogQuery(limit=10))
    seen = [item.id for item in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        # New entries land between pages: they must not shift the pages.
        await storage.write_batch([make_entry() for _ in range(7)])
        page = await storage.query(LogQuery(limit=10, cursor=cursor))
        seen.extend(item.id for item in page.items)
        cursor = page.next_cursor
    assert seen == [str(i) for i in range(30, 0, -1)]
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "!!!!",
        encode_cursor({"x": 1}),
        encode_cursor({"id": "abc"}),
        encode_cursor({"id": None}),
        encode_cursor({"id": 2**70}),
        encode_cursor([1, 2]),
    ],  # type: ignore[arg-type]
)
async def test_garbage_cursor_raises_invalid_cursor(
    storage: SQLiteStorage, cursor: str
) -> None:
    await storage.write_batch([make_entry()])
    if cursor == "":
        # An empty cursor means "first page".
        assert len((await storage.query(LogQuery(cursor=cursor))).items) == 1
        return
    with pytest.raises(InvalidCursor):
        await storage.query(LogQuery(cursor=cursor))


@pytest.mark.parametrize(
    "cursor", ["garbage", encode_cursor({"v": "x", "f": "a"}), encode_cursor({"v": 1})]
)
async def test_garbage_group_cursor_raises_invalid_cursor(
    storage: SQLiteStorage, cursor: str
) -> None:
    with pytest.raises(InvalidCursor):
        await storage.query_groups(GroupQuery(cursor=cursor))


async def test_each_filter_matches_memory_storage(storage: SQLiteStorage) -> None:
    memory = MemoryStorage()
    batch = []
    for index in range(60):
        batch.append(
            make_entry(
                timestamp=NOW - timedelta(minutes=index * 7),
                level="WARNING" if index % 3 == 0 else "ERROR",
                event="http_exception" if index % 2 else "unhandled_exception",
                http_status=[404, 500, 502][index % 3],
                endpoint=f"/e/{index % 4}",
                fingerprint=f"fp-{index % 5}",
            )
        )
    await storage.write_batch(batch)
    await memory.write_batch([item.model_copy(deep=True) for item in batch])
    queries = [
        LogQuery(),
        LogQuery(level="WARNING"),
        LogQuery(level="ERROR", limit=7),
        LogQuery(event="http_exception"),
        LogQuery(status=502),
        LogQuery(status=418),
        LogQuery(endpoint="/e/2"),
        LogQuery(fingerprint="fp-3"),
        LogQuery(since=NOW - timedelta(hours=2)),
        LogQuery(until=NOW - timedelta(hours=3)),
        LogQuery(
            since=NOW - timedelta(hours=5), until=NOW - timedelta(hours=1, minutes=3)
        ),
        LogQuery(since=NOW + timedelta(hours=1)),
        LogQuery(level="ERROR", since=NOW - timedelta(hours=4), endpoint="/e/1"),
        LogQuery(event="http_exception", status=404, limit=3),
    ]
    for query in queries:
        for_sqlite = await _all_pages(storage, query)
        for_memory = await _all_pages(memory, query)
        assert for_sqlite == for_memory, query


async def _all_pages(store: Storage, query: LogQuery) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.query(query.model_copy(update={"cursor": cursor}))
        ids.extend(item.id or "" for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return ids


async def test_time_range_with_unordered_timestamps(storage: SQLiteStorage) -> None:
    # Timestamps that do not follow ids (pushed entries may carry any time).
    times = [NOW - timedelta(minutes=minutes) for minutes in (5, 300, 30, 600, 1, 120)]
    await storage.write_batch([make_entry(timestamp=moment) for moment in times])
    page = await storage.query(
        LogQuery(since=NOW - timedelta(minutes=200), until=NOW - timedelta(minutes=2))
    )
    assert [item.id for item in page.items] == ["6", "3", "1"]


async def test_stats(storage: SQLiteStorage) -> None:
    await storage.write_batch(
        [
            make_entry(timestamp=NOW - timedelta(hours=1)),
            make_entry(timestamp=NOW - timedelta(hours=23, minutes=59, seconds=59)),
            make_entry(timestamp=NOW - timedelta(hours=24, seconds=1)),
            make_entry(timestamp=NOW - timedelta(hours=3), level="WARNING"),
            make_entry(timestamp=NOW - timedelta(days=3), level="WARNING"),
        ]
    )
    stats = await storage.stats(now=NOW)
    assert (stats.errors_24h, stats.warnings_24h, stats.total) == (2, 1, 5)
    assert stats.latest_error_at == NOW - timedelta(hours=1)
    assert stats.dropped == 0
    empty = SQLiteStorage(Path(storage.path).with_name("empty.db"))
    await empty.start()
    try:
        assert (await empty.stats(now=NOW)).latest_error_at is None
    finally:
        await empty.close()


async def test_stats_matches_memory_at_every_boundary(storage: SQLiteStorage) -> None:
    memory = MemoryStorage()
    batch = [
        make_entry(
            timestamp=NOW - timedelta(seconds=seconds),
            level="ERROR" if seconds % 2 else "WARNING",
        )
        for seconds in range(0, 2 * 86_400, 397)
    ]
    await storage.write_batch(batch)
    await memory.write_batch([item.model_copy() for item in batch])
    for shift in (0, 1, 59, 61, 3599, 3601, 7777):
        now = NOW + timedelta(seconds=shift, microseconds=shift)
        assert await storage.stats(now=now) == await memory.stats(now=now), shift


async def test_timeline(storage: SQLiteStorage) -> None:
    await storage.write_batch(
        [
            make_entry(timestamp=NOW),
            make_entry(timestamp=NOW - timedelta(minutes=29)),
            make_entry(timestamp=NOW - timedelta(minutes=31), level="WARNING"),
            make_entry(timestamp=NOW - timedelta(hours=5)),
            make_entry(timestamp=NOW - timedelta(hours=30)),
        ]
    )
    buckets = await storage.timeline(hours=24, now=NOW)
    assert [bucket.start for bucket in buckets] == timeline_starts(24, NOW)
    assert (buckets[-1].errors, buckets[-1].warnings) == (2, 0)
    assert (buckets[-2].errors, buckets[-2].warnings) == (0, 1)
    assert buckets[-6].errors == 1
    assert sum(bucket.errors + bucket.warnings for bucket in buckets) == 4
    assert await storage.timeline(hours=0, now=NOW) == []


async def test_set_group_status_unknown_group(storage: SQLiteStorage) -> None:
    assert await storage.set_group_status("nope", "resolved") is None
    assert await storage.get_group("nope") is None


async def test_close_is_idempotent_and_reads_after_close_fail_cleanly(
    storage: SQLiteStorage,
) -> None:
    from flare_core import StorageUnavailable

    await storage.close()
    await storage.close()
    with pytest.raises(StorageUnavailable):
        await storage.query(LogQuery())
    with pytest.raises(StorageUnavailable):
        await storage.write_batch([make_entry()])


async def test_wal_mode_and_busy_timeout(storage: SQLiteStorage) -> None:
    connection = sqlite3.connect(storage.path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()
    assert storage.busy_timeout_ms >= 5000


async def test_restart_keeps_data_and_ids_never_reused(db_path: Path) -> None:
    first = SQLiteStorage(db_path)
    await first.start()
    batch = [make_entry(timestamp=NOW - timedelta(days=30)) for _ in range(3)]
    await first.write_batch(batch)
    assert await first.apply_retention(10, timedelta(days=1), now=NOW) == 3
    await first.close()
    second = SQLiteStorage(db_path)
    await second.start()
    try:
        later = [make_entry()]
        await second.write_batch(later)
        assert later[0].id == "4"
    finally:
        await second.close()


async def test_two_storages_on_one_file_interleave(db_path: Path) -> None:
    one, two = SQLiteStorage(db_path), SQLiteStorage(db_path)
    await one.start()
    await two.start()
    try:
        for _ in range(5):
            await one.write_batch([make_entry(fingerprint="shared") for _ in range(3)])
            await two.write_batch([make_entry(fingerprint="shared") for _ in range(2)])
        ids = await _all_pages(one, LogQuery(limit=7))
        assert ids == [str(i) for i in range(25, 0, -1)]
        group = await two.get_group("shared")
        assert group is not None and group.count == 25
        assert (await two.stats(now=NOW)).total == 25
    finally:
        await one.close()
        await two.close()


async def test_a_retried_batch_is_not_written_twice(storage: SQLiteStorage) -> None:
    # A write cancelled after its COMMIT went through leaves the entries with
    # their ids; the worker retries the batch, and nothing is duplicated.
    batch = [make_entry() for _ in range(3)]
    await storage.write_batch(batch)
    fresh = make_entry()
    await storage.write_batch([*batch, fresh])
    assert fresh.id == "4"
    assert (await storage.stats(now=NOW)).total == 4
    group = await storage.get_group("fp-default")
    assert group is not None and group.count == 4


async def test_cancelled_write_keeps_the_file_consistent(
    storage: SQLiteStorage,
) -> None:
    import asyncio

    for _ in range(20):
        batch = [make_entry(stack_trace="x" * 50_000) for _ in range(50)]
        task = asyncio.create_task(storage.write_batch(batch))
        await asyncio.sleep(0.002)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The worker puts the batch back and writes it again.
            await storage.write_batch(batch)
    stats = await storage.stats(now=NOW)
    assert stats.total == 1000
    ids = [item.id for item in (await storage.query(LogQuery(limit=500))).items]
    assert len(ids) == len(set(ids)) == 500
    group = await storage.get_group("fp-default")
    assert group is not None and group.count == 1000
