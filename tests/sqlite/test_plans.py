"""Every dashboard read uses an index or a counter table, never a full scan of entries.

The timing targets (p95 < 20 ms at a million rows) are measured by
``python -m bench queries``; this test keeps the query plans honest in CI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from flare_core.models import GroupQuery, LogQuery
from flare_core.storage import encode_cursor
from flare_sqlite import SQLiteStorage
from tests.sqlite.conftest import NOW, make_entry

READS: dict[str, Callable[[SQLiteStorage], Awaitable[Any]]] = {
    "newest": lambda s: s.query(LogQuery()),
    "level": lambda s: s.query(LogQuery(level="WARNING")),
    "event": lambda s: s.query(LogQuery(event="http_exception")),
    "status": lambda s: s.query(LogQuery(status=404)),
    "endpoint": lambda s: s.query(LogQuery(endpoint="/e/3")),
    "fingerprint": lambda s: s.query(LogQuery(fingerprint="fp-3")),
    "fingerprint and level": lambda s: s.query(
        LogQuery(fingerprint="fp-3", level="ERROR", cursor=encode_cursor({"id": "250"}))
    ),
    "fingerprint since": lambda s: s.query(
        LogQuery(fingerprint="fp-3", since=NOW - timedelta(days=2))
    ),
    "since": lambda s: s.query(LogQuery(since=NOW - timedelta(hours=1))),
    "until": lambda s: s.query(LogQuery(until=NOW - timedelta(days=5))),
    "range": lambda s: s.query(
        LogQuery(since=NOW - timedelta(days=3), until=NOW - timedelta(days=2))
    ),
    "cursor": lambda s: s.query(LogQuery(cursor=encode_cursor({"id": "150"}))),
    "cursor and level": lambda s: s.query(
        LogQuery(level="ERROR", cursor=encode_cursor({"id": "150"}))
    ),
    "search": lambda s: s.query(LogQuery(q="timeout")),
    "get": lambda s: s.get("7"),
    "stats": lambda s: s.stats(now=NOW),
    "timeline": lambda s: s.timeline(168, now=NOW),
    "groups": lambda s: s.query_groups(GroupQuery()),
    "groups by count": lambda s: s.query_groups(GroupQuery(sort="count")),
    "ignored groups": lambda s: s.query_groups(GroupQuery(status="ignored")),
    "resolved groups by first seen": lambda s: s.query_groups(
        GroupQuery(status="resolved", sort="first_seen")
    ),
    "sparklines": lambda s: s.group_sparklines([f"fp-{i}" for i in range(50)], now=NOW),
}


@pytest.mark.parametrize("name", list(READS))
async def test_no_full_scan_of_entries(
    storage: SQLiteStorage, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    await storage.write_batch(
        [
            make_entry(
                timestamp=NOW - timedelta(minutes=index * 41),
                level="WARNING" if index % 3 == 0 else "ERROR",
                event="http_exception" if index % 2 else "unhandled_exception",
                http_status=[404, 500, 502][index % 3],
                endpoint=f"/e/{index % 7}",
                fingerprint=f"fp-{index % 60}",
                message=f"upstream timeout {index}",
            )
            for index in range(300)
        ]
    )
    statements: list[tuple[str, Any]] = []
    fetch = storage._fetch

    async def recording(sql: str, params: Any = ()) -> list[Any]:
        statements.append((sql, params))
        return await fetch(sql, params)

    monkeypatch.setattr(storage, "_fetch", recording)
    reader = storage._read_connection()
    execute_fetchall = reader.execute_fetchall

    async def recording_reader(sql: str, params: Any = ()) -> Any:
        statements.append((sql, params))
        return await execute_fetchall(sql, params)

    monkeypatch.setattr(reader, "execute_fetchall", recording_reader)
    await READS[name](storage)
    assert statements
    connection = sqlite3.connect(storage.path)
    connection.create_function("flare_contains", 4, lambda *args: True)
    try:
        for sql, params in statements:
            plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            details = [row[3] for row in plan]
            # A plain "SCAN e" walks rows newest first and stops at the limit;
            # only the unfiltered newest page may do that.
            walks = [step for step in details if step in ("SCAN e", "SCAN entries")]
            if name != "newest":
                assert not walks, (name, sql, details)
            assert not any(
                "SCAN error_groups" in step and "USING" not in step for step in details
            ), (name, sql, details)
    finally:
        connection.close()
