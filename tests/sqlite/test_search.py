"""Full-text search: any text is plain text, never FTS5 syntax, and never an error."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flare_core.models import LogQuery
from flare_sqlite import SQLiteStorage
from tests.sqlite.conftest import NOW, make_entry

MESSAGES = {
    "user": "lookup failed for user-id 42",
    "db": "could not connect to db.internal:5432 (timeout)",
    "percent": "disk at 50% capacity",
    "and": "this AND that happened",
    "quote": 'unexpected " in input',
    "apostrophe": "can't parse it",
    "or": "pick a OR b",
    "paren": "unbalanced ( parenthesis",
    "star": "glob * matched nothing",
    "near": "NEAR the edge",
    "unicode": "mail to ünïcode@x failed",
    "plain": "nothing special here",
}

QUERIES = {
    "user-id": {"user"},
    "db.internal:5432": {"db"},
    "50%": {"percent"},
    "AND": {"and"},
    '"': {"quote"},
    "'": {"apostrophe"},
    "a OR": {"or"},
    "(": {"paren", "db"},
    "*": {"star"},
    "NEAR": {"near"},
    "ünïcode@x": {"unicode"},
    "ÜNÏCODE@X": {"unicode"},
    "connect": {"db"},
    "user id": set(),
    "%": {"percent"},
    '"AND" OR *': set(),
    "NEAR(a b)": set(),
    "col:value": set(),
    "^start": set(),
    "-": {"user"},
    "x" * 500: set(),
    "NOT": {"db", "star", "plain"},
    "a)b(": set(),
    "%_": set(),
    "\\": set(),
    "\u0000": set(),
}


@pytest.fixture
async def searchable(storage: SQLiteStorage) -> dict[str, str]:
    entries = {
        key: make_entry(message=text, error=None) for key, text in MESSAGES.items()
    }
    await storage.write_batch(list(entries.values()))
    return {entry.id or "": key for key, entry in entries.items()}


@pytest.mark.parametrize("text", list(QUERIES))
async def test_text_is_searched_literally(
    storage: SQLiteStorage, searchable: dict[str, str], text: str
) -> None:
    page = await storage.query(LogQuery(q=text))
    found = {searchable[item.id or ""] for item in page.items}
    assert found == QUERIES[text]


@pytest.mark.parametrize("text", ["", "   "])
async def test_empty_text_is_no_filter(
    storage: SQLiteStorage, searchable: dict[str, str], text: str
) -> None:
    page = await storage.query(LogQuery(q=text, limit=100))
    assert len(page.items) == len(MESSAGES)


async def test_search_covers_error_and_endpoint(storage: SQLiteStorage) -> None:
    entries = [
        make_entry(message="m", error="KeyError: 'tenant_17'"),
        make_entry(message="m", error=None, endpoint="/billing/invoices"),
    ]
    await storage.write_batch(entries)
    assert [i.id for i in (await storage.query(LogQuery(q="tenant_17"))).items] == ["1"]
    assert [i.id for i in (await storage.query(LogQuery(q="/billing/inv"))).items] == [
        "2"
    ]
    assert [i.id for i in (await storage.query(LogQuery(q="invoices"))).items] == ["2"]


async def test_search_with_filters_and_cursor(storage: SQLiteStorage) -> None:
    batch = [
        make_entry(
            message=f"payment gateway timeout #{index}",
            level="WARNING" if index % 2 else "ERROR",
            timestamp=NOW - timedelta(minutes=index),
        )
        for index in range(30)
    ]
    batch += [make_entry(message="unrelated") for _ in range(10)]
    await storage.write_batch(batch)
    ids: list[str] = []
    cursor = None
    while True:
        page = await storage.query(
            LogQuery(q="gateway timeout", level="ERROR", limit=4, cursor=cursor)
        )
        ids.extend(item.id or "" for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == [str(i) for i in range(29, 0, -2)]


async def test_punctuation_search_pages_past_its_window(
    storage: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flare_sqlite._reads as module

    monkeypatch.setattr(module, "_SCAN_WINDOW", 10)
    await storage.write_batch([make_entry(message="a ~~ b")])
    await storage.write_batch([make_entry(message="plain") for _ in range(35)])
    ids: list[str] = []
    cursor = None
    for _ in range(20):
        page = await storage.query(LogQuery(q="~~", cursor=cursor))
        ids.extend(item.id or "" for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == ["1"]


async def test_deleted_entries_leave_the_index(storage: SQLiteStorage) -> None:
    old = make_entry(
        message="ancient zebra failure", timestamp=NOW - timedelta(days=10)
    )
    new = make_entry(message="fresh zebra failure", timestamp=NOW)
    await storage.write_batch([old, new])
    assert len((await storage.query(LogQuery(q="zebra"))).items) == 2
    assert await storage.apply_retention(100, timedelta(days=1), now=NOW) == 1
    found = (await storage.query(LogQuery(q="zebra"))).items
    assert [item.id for item in found] == [new.id]
    assert (await storage.query(LogQuery(q="ancient"))).items == []
    # The index still agrees with its content table.
    import sqlite3

    connection = sqlite3.connect(storage.path)
    try:
        connection.execute(
            "INSERT INTO entries_fts(entries_fts) VALUES ('integrity-check')"
        )
    finally:
        connection.close()
