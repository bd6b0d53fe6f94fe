"""Helpers for testing Flare plugins, storage backends above all.

A backend proves it honours the ``Storage`` contract by subclassing
``StorageContract`` in its own test suite and providing a ``storage``
fixture that yields a started, empty storage::

    import pytest
    from flare_core.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        async def storage(self, tmp_path):
            store = MyStorage(tmp_path / "x")
            await store.start()
            yield store
            await store.close()

The suite needs pytest and pytest-asyncio (``asyncio_mode = "auto"``).
Entries are written in timestamp order, as the worker writes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from .errors import InvalidCursor
from .models import FlareLogEntry, GroupQuery, LogQuery, utcnow
from .storage import Storage

__all__ = ["HOSTILE_QUERIES", "StorageContract", "make_entry"]

# Search text that breaks naive full-text backends: FTS operators,
# punctuation, lone quotes and brackets, non-ASCII.
HOSTILE_QUERIES = (
    "user-id",
    "db.internal:5432",
    "50%",
    "AND",
    '"',
    "'",
    "a OR",
    "(",
    "*",
    "NEAR",
    "ünïcode@x",
    "NOT",
    "-",
    "a)b(",
    "%_",
    "\\",
    "ab\x00cd",
    "boom\x00",
    "",
)


def make_entry(**fields: Any) -> FlareLogEntry:
    """Build a realistic entry; ``fields`` override any default."""
    values: dict[str, Any] = {
        "level": "ERROR",
        "event": "unhandled_exception",
        "message": "division by zero",
        "endpoint": "/crash",
        "route": "/crash",
        "http_method": "GET",
        "http_status": 500,
        "ip_address": "127.0.0.1",
        "duration_ms": 1.5,
        "error": "ZeroDivisionError: division by zero",
        "exception_type": "ZeroDivisionError",
        "stack_trace": 'Traceback (most recent call last):\n  File "app.py", line 3\n',
        "request_id": "req-1",
        "context": {"request": {"headers": {"user-agent": "pytest"}}},
        "fingerprint": "fp-crash",
    }
    values.update(fields)
    return FlareLogEntry(**values)


async def _write(storage: Storage, *entries: FlareLogEntry) -> list[FlareLogEntry]:
    await storage.write_batch(list(entries))
    return list(entries)


async def _all_ids(storage: Storage, query: LogQuery) -> list[str]:
    ids: list[str] = []
    while True:
        page = await storage.query(query)
        ids.extend(entry.id or "" for entry in page.items)
        if page.next_cursor is None:
            return ids
        query = query.model_copy(update={"cursor": page.next_cursor})


class StorageContract:
    """The behaviour every ``Storage`` must show; subclass it in a backend's tests."""

    # Writing and reading ------------------------------------------------

    async def test_write_assigns_ids(self, storage: Storage) -> None:
        entries = await _write(storage, make_entry(), make_entry())
        ids = [entry.id for entry in entries]
        assert all(ids)
        assert len(set(ids)) == 2

    async def test_get_round_trips_fields(self, storage: Storage) -> None:
        (entry,) = await _write(storage, make_entry(context={"order": {"id": 7}}))
        stored = await storage.get(entry.id or "")
        assert stored is not None
        assert stored.model_dump(exclude={"timestamp"}) == entry.model_dump(
            exclude={"timestamp"}
        )
        assert abs((stored.timestamp - entry.timestamp).total_seconds()) < 0.001

    async def test_get_unknown_returns_none(self, storage: Storage) -> None:
        await _write(storage, make_entry())
        assert await storage.get("999999999") is None
        assert await storage.get("not-an-id") is None

    async def test_large_and_unicode_round_trip(self, storage: Storage) -> None:
        trace = "frame ☃ \x00\x7f \\x89PNG\r\n" * 40_000
        message = "ünïcode 汉字 🔥 <script>alert(1)</script> ' \" \\"
        (entry,) = await _write(storage, make_entry(stack_trace=trace, message=message))
        stored = await storage.get(entry.id or "")
        assert stored is not None
        assert stored.stack_trace == trace
        assert stored.message == message

    async def test_query_newest_first(self, storage: Storage) -> None:
        entries = await _write(
            storage, *[make_entry(message=f"m{i}") for i in range(5)]
        )
        page = await storage.query(LogQuery(limit=10))
        assert [entry.id for entry in page.items] == [
            entry.id for entry in reversed(entries)
        ]
        assert page.next_cursor is None

    async def test_cursor_pages_without_gaps(self, storage: Storage) -> None:
        entries = await _write(
            storage, *[make_entry(message=f"m{i}") for i in range(7)]
        )
        first = await storage.query(LogQuery(limit=3))
        assert first.next_cursor is not None
        await _write(storage, make_entry(message="arrived later"))
        rest = await _all_ids(storage, LogQuery(limit=3, cursor=first.next_cursor))
        seen = [entry.id for entry in first.items] + rest
        assert seen == [entry.id for entry in reversed(entries)]

    async def test_malformed_cursor_raises(self, storage: Storage) -> None:
        await _write(storage, make_entry())
        with pytest.raises(InvalidCursor):
            await storage.query(LogQuery(cursor="%%%not-a-cursor"))

    # Filters -------------------------------------------------------------

    async def test_filters_narrow(self, storage: Storage) -> None:
        await _write(
            storage,
            make_entry(),
            make_entry(
                level="WARNING",
                event="http_exception",
                http_status=404,
                endpoint="/items/9",
                fingerprint="fp-404",
                message="item 9 not found",
            ),
        )
        cases: list[dict[str, Any]] = [
            {"level": "WARNING"},
            {"event": "http_exception"},
            {"status": 404},
            {"endpoint": "/items/9"},
            {"fingerprint": "fp-404"},
            {"q": "item 9"},
        ]
        for filters in cases:
            page = await storage.query(LogQuery(**filters))
            assert [entry.http_status for entry in page.items] == [404], filters

    async def test_time_range_filter(self, storage: Storage) -> None:
        now = utcnow()
        await _write(
            storage, make_entry(timestamp=now - timedelta(hours=3), message="old")
        )
        await _write(storage, make_entry(timestamp=now, message="new"))
        recent = await storage.query(LogQuery(since=now - timedelta(hours=1)))
        older = await storage.query(LogQuery(until=now - timedelta(hours=1)))
        assert [entry.message for entry in recent.items] == ["new"]
        assert [entry.message for entry in older.items] == ["old"]

    async def test_search_is_plain_text(self, storage: Storage) -> None:
        messages = [
            "KeyError: 'user-id'",
            "connect to db.internal:5432 failed",
            "50% quota used",
            "AND gate failed",
        ]
        await _write(
            storage, *[make_entry(message=text, error=None) for text in messages]
        )
        for query in HOSTILE_QUERIES:
            page = await storage.query(LogQuery(q=query or None))
            assert isinstance(page.items, list), query
        for needle, expected in [
            ("user-id", messages[0]),
            ("db.internal:5432", messages[1]),
        ]:
            found = await _all_ids(storage, LogQuery(q=needle))
            stored = [await storage.get(entry_id) for entry_id in found]
            assert [entry.message for entry in stored if entry] == [expected]

    # Counts ----------------------------------------------------------------

    async def test_stats_count_last_day(self, storage: Storage) -> None:
        now = utcnow()
        await _write(storage, make_entry(timestamp=now - timedelta(hours=30)))
        await _write(
            storage,
            make_entry(timestamp=now - timedelta(minutes=5)),
            make_entry(
                level="WARNING", http_status=404, timestamp=now - timedelta(minutes=4)
            ),
        )
        stats = await storage.stats(now)
        assert stats.errors_24h == 1
        assert stats.warnings_24h == 1
        assert stats.total == 3
        assert stats.latest_error_at is not None
        assert (
            abs((stats.latest_error_at - (now - timedelta(minutes=5))).total_seconds())
            < 1
        )

    async def test_timeline_buckets(self, storage: Storage) -> None:
        now = utcnow()
        await _write(
            storage,
            make_entry(timestamp=now - timedelta(hours=2)),
            make_entry(level="WARNING", timestamp=now),
            make_entry(timestamp=now),
        )
        buckets = await storage.timeline(24, now)
        assert len(buckets) == 24
        assert buckets[-1].errors == 1
        assert buckets[-1].warnings == 1
        assert sum(bucket.errors for bucket in buckets) == 2

    # Retention ---------------------------------------------------------------

    async def test_retention_by_count(self, storage: Storage) -> None:
        await _write(storage, *[make_entry(message=f"m{i}") for i in range(30)])
        await storage.apply_retention(10, timedelta(days=7))
        ids = await _all_ids(storage, LogQuery(limit=100))
        newest = await storage.query(LogQuery(limit=1))
        assert 10 <= len(ids) < 30
        assert newest.items[0].message == "m29"

    async def test_retention_by_age(self, storage: Storage) -> None:
        now = utcnow()
        await _write(
            storage,
            *[
                make_entry(message="stale", timestamp=now - timedelta(hours=5))
                for _ in range(3)
            ],
        )
        await _write(storage, make_entry(message="fresh", timestamp=now))
        await storage.apply_retention(1000, timedelta(hours=1), now)
        page = await storage.query(LogQuery(limit=100))
        search = await storage.query(LogQuery(q="stale"))
        assert [entry.message for entry in page.items] == ["fresh"]
        assert search.items == []

    # Groups ------------------------------------------------------------------

    async def test_groups_count_entries(self, storage: Storage) -> None:
        await _write(storage, make_entry(), make_entry())
        await _write(storage, make_entry(fingerprint="fp-other", message="other"))
        group = await storage.get_group("fp-crash")
        assert group is not None
        assert group.count == 2
        assert group.status == "unresolved"
        page = await storage.query_groups(GroupQuery(sort="count"))
        assert [item.fingerprint for item in page.items] == ["fp-crash", "fp-other"]

    async def test_group_latest_entry(self, storage: Storage) -> None:
        entries = await _write(storage, make_entry(), make_entry(message="second"))
        group = await storage.get_group("fp-crash")
        assert group is not None
        assert group.latest_entry_id == entries[-1].id
        assert group.first_seen <= group.last_seen

    async def test_resolved_group_regresses(self, storage: Storage) -> None:
        await _write(storage, make_entry())
        resolved = await storage.set_group_status("fp-crash", "resolved")
        assert resolved is not None
        assert resolved.status == "resolved"
        await _write(storage, make_entry())
        group = await storage.get_group("fp-crash")
        assert group is not None
        assert group.status == "unresolved"
        assert group.regression is True

    async def test_ignored_group_hidden(self, storage: Storage) -> None:
        await _write(storage, make_entry(), make_entry(fingerprint="fp-other"))
        await storage.set_group_status("fp-other", "ignored")
        await _write(storage, make_entry(fingerprint="fp-other"))
        default = await storage.query_groups(GroupQuery())
        ignored = await storage.query_groups(GroupQuery(status="ignored"))
        assert [group.fingerprint for group in default.items] == ["fp-crash"]
        assert [group.fingerprint for group in ignored.items] == ["fp-other"]
        assert ignored.items[0].count == 2

    async def test_unknown_group_status(self, storage: Storage) -> None:
        assert await storage.set_group_status("fp-none", "resolved") is None
        assert await storage.get_group("fp-none") is None

    async def test_group_pages(self, storage: Storage) -> None:
        await _write(storage, *[make_entry(fingerprint=f"fp-{i}") for i in range(5)])
        first = await storage.query_groups(GroupQuery(limit=2))
        seen = [group.fingerprint for group in first.items]
        cursor = first.next_cursor
        while cursor:
            page = await storage.query_groups(GroupQuery(limit=2, cursor=cursor))
            seen.extend(group.fingerprint for group in page.items)
            cursor = page.next_cursor
        assert sorted(seen) == [f"fp-{i}" for i in range(5)]
        assert len(seen) == 5

    async def test_groups_leave_with_entries(self, storage: Storage) -> None:
        now = utcnow()
        await _write(
            storage,
            make_entry(fingerprint="fp-old", timestamp=now - timedelta(hours=5)),
        )
        await _write(storage, make_entry(timestamp=now))
        await storage.apply_retention(1000, timedelta(hours=1), now)
        assert await storage.get_group("fp-old") is None
        assert await storage.get_group("fp-crash") is not None

    async def test_sparklines(self, storage: Storage) -> None:
        now = utcnow()
        await _write(
            storage,
            make_entry(timestamp=now - timedelta(hours=1)),
            make_entry(timestamp=now),
            make_entry(timestamp=now),
        )
        lines = await storage.group_sparklines(["fp-crash", "fp-none"], 24, now)
        assert lines["fp-crash"][-1] == 2
        assert lines["fp-crash"][-2] == 1
        assert sum(lines["fp-none"]) == 0
        assert len(lines["fp-crash"]) == 24
