"""Groups (merge_into_group semantics, upserted with each batch) and retention."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from flare_core import MemoryStorage, Storage
from flare_core.models import GroupQuery, LogQuery
from flare_sqlite import SQLiteStorage
from tests.sqlite.conftest import NOW, make_entry


async def test_group_upserted_in_the_same_batch(storage: SQLiteStorage) -> None:
    batch = [
        make_entry(
            fingerprint="a", timestamp=NOW - timedelta(minutes=10), level="WARNING"
        ),
        make_entry(fingerprint="a", timestamp=NOW - timedelta(minutes=5)),
        make_entry(fingerprint="b", timestamp=NOW - timedelta(minutes=7)),
        make_entry(fingerprint="a", timestamp=NOW - timedelta(minutes=8)),
        make_entry(fingerprint=None),
    ]
    await storage.write_batch(batch)
    group = await storage.get_group("a")
    assert group is not None
    assert group.count == 3
    assert group.first_seen == NOW - timedelta(minutes=10)
    assert group.last_seen == NOW - timedelta(minutes=5)
    assert group.latest_entry_id == batch[1].id
    assert group.level == "ERROR"
    assert group.title == "RuntimeError: boom"
    assert (await storage.get_group("b")) is not None


async def test_groups_match_memory_storage(storage: SQLiteStorage) -> None:
    memory = MemoryStorage()
    batches = [
        [
            make_entry(
                fingerprint=f"fp-{(index * 7 + round_) % 9}",
                timestamp=NOW - timedelta(minutes=(index * 13 + round_ * 5) % 300),
                level="WARNING" if index % 4 == 0 else "ERROR",
                event="http_exception" if index % 3 == 0 else "unhandled_exception",
                exception_type=None if index % 3 == 0 else "builtins.KeyError",
                http_status=404 if index % 3 == 0 else 500,
                message=f"failure {index % 5}",
            )
            for index in range(20)
        ]
        for round_ in range(4)
    ]
    for batch in batches:
        await storage.write_batch(batch)
        await memory.write_batch([item.model_copy(deep=True) for item in batch])
    await storage.set_group_status("fp-1", "ignored")
    await memory.set_group_status("fp-1", "ignored")
    await storage.set_group_status("fp-2", "resolved")
    await memory.set_group_status("fp-2", "resolved")
    for query in [
        GroupQuery(),
        GroupQuery(sort="count"),
        GroupQuery(sort="first_seen"),
        GroupQuery(status="ignored"),
        GroupQuery(status="resolved"),
        GroupQuery(status="unresolved", limit=2),
        GroupQuery(level="WARNING"),
        GroupQuery(q="keyerror"),
        GroupQuery(q="404 GET"),
        GroupQuery(limit=3, sort="count"),
    ]:
        assert await _all_groups(storage, query) == await _all_groups(memory, query), (
            query
        )
    for fingerprint in (f"fp-{index}" for index in range(9)):
        assert await storage.get_group(fingerprint) == await memory.get_group(
            fingerprint
        )


async def _all_groups(
    store: Storage, query: GroupQuery
) -> list[tuple[str, int, str, bool]]:
    found = []
    cursor = None
    while True:
        page = await store.query_groups(query.model_copy(update={"cursor": cursor}))
        found.extend(
            (g.fingerprint, g.count, g.status, g.regression) for g in page.items
        )
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_resolved_group_that_recurs_is_a_regression(
    storage: SQLiteStorage,
) -> None:
    await storage.write_batch([make_entry(fingerprint="r")])
    resolved = await storage.set_group_status("r", "resolved")
    assert (
        resolved is not None
        and resolved.status == "resolved"
        and not resolved.regression
    )
    await storage.write_batch([make_entry(fingerprint="r")])
    group = await storage.get_group("r")
    assert group is not None
    assert (group.status, group.regression, group.count) == ("unresolved", True, 2)
    again = await storage.set_group_status("r", "resolved")
    assert again is not None and not again.regression


async def test_ignored_group_keeps_counting_and_stays_hidden(
    storage: SQLiteStorage,
) -> None:
    await storage.write_batch(
        [make_entry(fingerprint="i"), make_entry(fingerprint="v")]
    )
    await storage.set_group_status("i", "ignored")
    await storage.write_batch([make_entry(fingerprint="i") for _ in range(3)])
    group = await storage.get_group("i")
    assert group is not None and (group.status, group.count) == ("ignored", 4)
    assert [
        g.fingerprint for g in (await storage.query_groups(GroupQuery())).items
    ] == ["v"]
    shown = await storage.query_groups(GroupQuery(status="ignored"))
    assert [g.fingerprint for g in shown.items] == ["i"]


async def test_sparklines(storage: SQLiteStorage) -> None:
    await storage.write_batch(
        [
            make_entry(fingerprint="s", timestamp=NOW),
            make_entry(fingerprint="s", timestamp=NOW - timedelta(minutes=20)),
            make_entry(fingerprint="s", timestamp=NOW - timedelta(hours=2)),
            make_entry(fingerprint="s", timestamp=NOW - timedelta(hours=30)),
            make_entry(fingerprint="t", timestamp=NOW - timedelta(hours=23)),
        ]
    )
    lines = await storage.group_sparklines(["s", "t", "unknown"], hours=24, now=NOW)
    assert lines["s"][-1] == 2 and lines["s"][-3] == 1 and sum(lines["s"]) == 3
    assert lines["t"][0] == 1 and sum(lines["t"]) == 1
    assert lines["unknown"] == [0] * 24
    many = [f"g{index}" for index in range(1200)]
    assert len(await storage.group_sparklines(many, hours=3, now=NOW)) == 1200


async def test_retention_by_count_keeps_the_newest(storage: SQLiteStorage) -> None:
    await storage.write_batch(
        [make_entry(fingerprint=f"c{index % 3}") for index in range(12)]
    )
    assert await storage.apply_retention(5, timedelta(days=7), now=NOW) == 7
    page = await storage.query(LogQuery())
    assert [item.id for item in page.items] == ["12", "11", "10", "9", "8"]
    assert (await storage.stats(now=NOW)).total == 5
    assert await storage.apply_retention(5, timedelta(days=7), now=NOW) == 0
    counts = {
        g.fingerprint: g.count for g in (await storage.query_groups(GroupQuery())).items
    }
    assert counts == {"c0": 1, "c1": 2, "c2": 2}


async def test_retention_by_age_updates_every_counter(storage: SQLiteStorage) -> None:
    memory = MemoryStorage()
    batch = [
        make_entry(
            fingerprint=f"a{index % 4}",
            timestamp=NOW - timedelta(hours=index * 5),
            level="WARNING" if index % 2 else "ERROR",
        )
        for index in range(30)
    ]
    await storage.write_batch(batch)
    await memory.write_batch([item.model_copy(deep=True) for item in batch])
    for store in (storage, memory):
        assert await store.apply_retention(20, timedelta(hours=48), now=NOW) == 20
    assert await storage.stats(now=NOW) == await memory.stats(now=NOW)
    assert await storage.timeline(hours=72, now=NOW) == await memory.timeline(
        hours=72, now=NOW
    )
    fingerprints = [f"a{index}" for index in range(4)]
    assert await storage.group_sparklines(
        fingerprints, hours=72, now=NOW
    ) == await memory.group_sparklines(fingerprints, hours=72, now=NOW)
    for fingerprint in fingerprints:
        assert await storage.get_group(fingerprint) == await memory.get_group(
            fingerprint
        )


async def test_group_removed_when_every_entry_aged_out(storage: SQLiteStorage) -> None:
    await storage.write_batch(
        [
            make_entry(fingerprint="old", timestamp=NOW - timedelta(days=9)),
            make_entry(fingerprint="old", timestamp=NOW - timedelta(days=8)),
            make_entry(fingerprint="mixed", timestamp=NOW - timedelta(days=9)),
            make_entry(fingerprint="mixed", timestamp=NOW),
        ]
    )
    assert await storage.apply_retention(100, timedelta(days=7), now=NOW) == 3
    assert await storage.get_group("old") is None
    mixed = await storage.get_group("mixed")
    assert mixed is not None and mixed.count == 1
    assert await storage.group_sparklines(["old"], hours=24 * 10, now=NOW) == {
        "old": [0] * 240
    }
    connection = sqlite3.connect(storage.path)
    try:
        leftovers = connection.execute(
            "SELECT count(*) FROM group_hours WHERE fingerprint = 'old'"
        ).fetchone()[0]
    finally:
        connection.close()
    assert leftovers == 0


async def test_retention_in_chunks(
    storage: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flare_sqlite.storage as module

    monkeypatch.setattr(module, "_RETENTION_CHUNK", 7)
    await storage.write_batch(
        [make_entry(fingerprint=f"k{index % 5}") for index in range(50)]
    )
    assert await storage.apply_retention(10, timedelta(days=7), now=NOW) == 40
    assert (await storage.stats(now=NOW)).total == 10
    assert sum(g.count for g in (await storage.query_groups(GroupQuery())).items) == 10


async def test_retention_is_skipped_quietly_while_another_process_writes(
    storage: SQLiteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    await storage.write_batch([make_entry() for _ in range(10)])
    other = sqlite3.connect(storage.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level("WARNING"):
            removed = await storage.apply_retention(2, timedelta(days=7), now=NOW)
        assert removed == 0
        assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await storage.apply_retention(2, timedelta(days=7), now=NOW) == 8


async def test_concurrent_writes_reads_and_retention(db_path: Path) -> None:
    writers = [SQLiteStorage(db_path) for _ in range(3)]
    for writer in writers:
        await writer.start()
    try:

        async def write(store: SQLiteStorage) -> None:
            for _ in range(20):
                await store.write_batch(
                    [make_entry(fingerprint="x") for _ in range(10)]
                )

        async def read_and_trim(store: SQLiteStorage) -> None:
            for _ in range(20):
                await store.query(LogQuery(q="failed"))
                await store.stats(now=NOW)
                await store.apply_retention(100_000, timedelta(days=7), now=NOW)
                await asyncio.sleep(0)

        await asyncio.gather(*(write(w) for w in writers), read_and_trim(writers[0]))
        stats = await writers[1].stats(now=NOW)
        assert stats.total == 600
        group = await writers[2].get_group("x")
        assert group is not None and group.count == 600
    finally:
        for writer in writers:
            await writer.close()
