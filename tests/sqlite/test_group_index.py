"""A group's entries through ``group_index``, and the upgrade from schema version 1."""

from __future__ import annotations

import random
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flare_core import MemoryStorage, Storage
from flare_core.models import LogQuery
from flare_sqlite import SQLiteStorage
from flare_sqlite.schema import SCHEMA_VERSION, group_token
from tests.sqlite.conftest import NOW, make_entry

V1_FILE = Path(__file__).parent / "data" / "schema_v1.db"

# Fingerprints a plugin may set: hex-free, spaced, punctuation only, empty,
# accented, with NUL, long, and one that is a prefix of another.
FINGERPRINTS = [
    "fp-a",
    "fp-a2",
    "custom key: orders/#1",
    "!!!",
    "",
    "ünïcødé ключ",
    "nul\x00inside",
    "x" * 2000,
]


async def all_messages(storage: Storage, query: LogQuery) -> list[str]:
    """Return the messages of every page of ``query``, following the cursor."""
    messages: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await storage.query(query.model_copy(update={"cursor": cursor}))
        messages.extend(item.message for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return messages
    raise AssertionError(f"{query} did not end after 1000 pages")


def integrity_check(path: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "INSERT INTO group_index (group_index) VALUES ('integrity-check')"
        )
    finally:
        connection.close()


async def test_group_entries_match_memory_storage(storage: SQLiteStorage) -> None:
    memory = MemoryStorage()
    rng = random.Random(5)
    for batch_number in range(6):
        batch = [
            make_entry(
                fingerprint=rng.choice([*FINGERPRINTS, None]),
                timestamp=NOW - timedelta(minutes=rng.randrange(0, 600)),
                level=rng.choice(["ERROR", "WARNING"]),
                message=f"entry {batch_number}-{index}",
            )
            for index in range(40)
        ]
        await storage.write_batch(batch)
        await memory.write_batch([item.model_copy(deep=True) for item in batch])
    await storage.apply_retention(10_000, timedelta(minutes=400), now=NOW)
    await memory.apply_retention(10_000, timedelta(minutes=400), now=NOW)
    queries = [
        LogQuery(fingerprint=fingerprint, limit=7) for fingerprint in FINGERPRINTS
    ] + [
        LogQuery(fingerprint="fp-a", level="WARNING", limit=3),
        LogQuery(fingerprint="!!!", since=NOW - timedelta(minutes=200), limit=4),
        LogQuery(
            fingerprint="custom key: orders/#1",
            since=NOW - timedelta(minutes=300),
            until=NOW - timedelta(minutes=100),
            limit=2,
        ),
        LogQuery(fingerprint="custom key", limit=5),
        LogQuery(fingerprint="fp-a", q="entry 3", limit=5),
    ]
    for query in queries:
        expected = await all_messages(memory, query)
        found = await all_messages(storage, query)
        assert found == expected, query
    assert await all_messages(storage, LogQuery(fingerprint="custom key")) == []
    # Retention took the deleted entries out of the index, not only the rows.
    for fingerprint in FINGERPRINTS:
        indexed = await storage._fetch(
            "SELECT rowid FROM group_index WHERE group_index MATCH ?",
            ['"' + group_token(fingerprint) + '"'],
        )
        stored = await storage._fetch(
            "SELECT id FROM entries WHERE fingerprint = ?", [fingerprint]
        )
        assert sorted(indexed) == sorted(stored), fingerprint
        assert stored
    integrity_check(storage.path)


async def test_entries_deleted_by_hand_leave_no_ghosts(
    storage: SQLiteStorage,
) -> None:
    batch = [make_entry(fingerprint="fp-a", message=f"m{i}") for i in range(5)]
    await storage.write_batch(batch)
    connection = sqlite3.connect(storage.path)
    try:
        with connection:
            connection.execute("DELETE FROM entries WHERE id = ?", (batch[2].id,))
    finally:
        connection.close()
    found = await all_messages(storage, LogQuery(fingerprint="fp-a", limit=2))
    assert found == ["m4", "m3", "m1", "m0"]


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    target = tmp_path / "old.db"
    shutil.copyfile(V1_FILE, target)
    return target


def schema_objects(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name FROM sqlite_schema").fetchall()
    finally:
        connection.close()
    return {name for (name,) in rows}


async def test_upgrade_from_schema_v1_keeps_everything(v1_copy: Path) -> None:
    before = schema_objects(v1_copy)
    assert "entries_fingerprint" in before
    assert "group_index" not in before
    storage = SQLiteStorage(v1_copy)
    await storage.start()
    try:
        after = schema_objects(v1_copy)
        assert "group_index" in after
        assert "entries_fingerprint" not in after
        assert not {name for name in after if name.startswith("groups_status")}
        assert not {name for name in after if name.endswith("_v1")}
        version = await storage._fetch(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        )
        assert version == [(str(SCHEMA_VERSION),)]

        # What make_schema_v1.py wrote, newest first per group.
        assert await all_messages(storage, LogQuery(fingerprint="fp-a", limit=2)) == [
            "failure 5",
            "failure 65",
            "failure 70",
            "failure 130",
            "failure 200",
        ]
        custom = "custom key: orders/#1 ünï"
        assert await all_messages(storage, LogQuery(fingerprint=custom)) == [
            "failure 10",
            "failure 100",
            "failure 190",
        ]
        resolved = await storage.get_group("fp-resolved")
        assert resolved is not None
        assert (resolved.status, resolved.count) == ("resolved", 2)
        lines = await storage.group_sparklines(["fp-a", custom], now=NOW)
        assert lines["fp-a"][-4:] == [1, 1, 2, 1]
        assert sum(lines[custom]) == 3
        assert (await storage.stats(now=NOW)).total == 12

        # New writes land beside the old ones; retention still works.
        await storage.write_batch([make_entry(fingerprint="fp-a", message="new")])
        page = await storage.query(LogQuery(fingerprint="fp-a", limit=2))
        assert [item.message for item in page.items] == ["new", "failure 5"]
        group = await storage.get_group("fp-a")
        assert group is not None and group.count == 6
        removed = await storage.apply_retention(10_000, timedelta(minutes=60), now=NOW)
        assert removed == 6
        assert await all_messages(storage, LogQuery(fingerprint="fp-a")) == [
            "new",
            "failure 5",
        ]
        assert await storage.get_group(custom) is not None
    finally:
        await storage.close()
    integrity_check(str(v1_copy))

    # Opening the upgraded file again changes nothing.
    again = SQLiteStorage(v1_copy)
    await again.start()
    try:
        group = await again.get_group("fp-a")
        assert group is not None and group.count == 2
    finally:
        await again.close()


async def test_newer_schema_version_rejected(v1_copy: Path) -> None:
    connection = sqlite3.connect(v1_copy)
    try:
        with connection:
            connection.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION + 1),),
            )
    finally:
        connection.close()
    storage = SQLiteStorage(v1_copy)
    with pytest.raises(Exception, match="newer than this flare-sqlite"):
        await storage.start()


async def test_lone_surrogate_filters_match_stored_text(
    storage: SQLiteStorage,
) -> None:
    odd = "fp-\ud800"
    batch = [
        make_entry(fingerprint=odd, endpoint="/e/\udcff", message=f"m{i}")
        for i in range(3)
    ]
    await storage.write_batch(batch)
    queries = [
        LogQuery(fingerprint=odd),
        LogQuery(endpoint="/e/\udcff"),
        LogQuery(fingerprint=odd, q="m\ud800"),
        LogQuery(fingerprint=odd, q="\ud800"),
    ]
    found = [await all_messages(storage, query) for query in queries]
    assert found == [["m2", "m1", "m0"], ["m2", "m1", "m0"], [], []]
    group = await storage.get_group(odd)
    assert group is not None
    assert group.count == 3
    changed = await storage.set_group_status(odd, "ignored")
    assert changed is not None
    assert changed.status == "ignored"
    lines = await storage.group_sparklines([odd], now=NOW)
    assert sum(lines[odd]) == 3


async def test_entries_of_an_old_process_indexed_after_upgrade(
    v1_copy: Path,
) -> None:
    storage = SQLiteStorage(v1_copy)
    await storage.start()
    try:
        # A version 1 process that kept running writes rows without tokens.
        connection = sqlite3.connect(v1_copy)
        try:
            with connection:
                connection.executemany(
                    "INSERT INTO entries (ts, level, event, message, context, "
                    "fingerprint) VALUES (?, 'ERROR', 'e', ?, '{}', 'fp-a')",
                    [(1, "late 1"), (2, "late 2")],
                )
        finally:
            connection.close()
        assert "late 2" not in await all_messages(storage, LogQuery(fingerprint="fp-a"))

        await storage.apply_retention(10_000, timedelta(days=36500), now=NOW)
        found = await all_messages(storage, LogQuery(fingerprint="fp-a"))
        assert found[:2] == ["late 2", "late 1"]
        assert len(found) == 7
        marks = dict(await storage._fetch("SELECT key, value FROM meta"))
        top = await storage._fetch("SELECT max(id) FROM entries")
        assert marks["group_index_checked"] == str(top[0][0])

        # An hour after the upgrade the check ends and its marks go.
        later = datetime.now(UTC) + timedelta(hours=2)
        await storage.apply_retention(10_000, timedelta(days=36500), now=later)
        keys = {key for (key,) in await storage._fetch("SELECT key FROM meta")}
        assert keys == {"schema_version"}
    finally:
        await storage.close()
    integrity_check(str(v1_copy))
