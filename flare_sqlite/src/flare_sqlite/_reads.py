"""``_ReadsMixin``: the dashboard's reads of entries (search included),
numbers (stats, timeline) and groups."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flare_core.errors import StorageUnavailable
from flare_core.models import (
    ErrorGroup,
    FlareLogEntry,
    GroupPage,
    GroupQuery,
    LogPage,
    LogQuery,
    Stats,
    TimelineBucket,
    utcnow,
)
from flare_core.storage import encode_cursor, timeline_starts

from ._base import _StorageBase
from ._rows import (
    _ENTRY_SELECT,
    _GROUP_SELECT,
    _clean_params,
    _clean_text,
    _decode_entry_cursor,
    _decode_group_cursor,
    _entry_from_row,
    _from_us,
    _group_from_row,
    _is_busy,
    _page,
    _to_us,
)
from .schema import GROUP_COLUMNS, HOUR_US, MINUTE_US, group_token

logger = logging.getLogger("flare_sqlite")

# Text without letters or digits cannot use the FTS index: it is matched as
# a substring over at most this many of the newest entries per page.
_SCAN_WINDOW = 20_000

# A run of letters or digits: what FTS5's unicode61 tokenizer keeps as a token.
_TOKEN = re.compile(r"[^\W_]+")

# The last word of a search is matched as a prefix from this many characters.
_MIN_PREFIX = 3

# The ts index beats a newest-first scan when it has to read fewer rows
# than this factor times what the scan would read.
_INDEX_ADVANTAGE = 4

_GROUP_SORT_COLUMNS = {
    "last_seen": "last_seen",
    "count": "count",
    "first_seen": "first_seen",
}


class _ReadsMixin(_StorageBase):
    """The dashboard's reads, all through the read-only connection."""

    # Reads: entries -------------------------------------------------------

    async def get(self, entry_id: str) -> FlareLogEntry | None:
        text = str(entry_id)
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            return None
        row_id = int(text)
        rows = await self._fetch(
            f"SELECT {_ENTRY_SELECT} FROM entries e WHERE e.id = ?", (row_id,)
        )
        return _entry_from_row(rows[0]) if rows else None

    async def query(self, query: LogQuery) -> LogPage:
        before = _decode_entry_cursor(query.cursor) if query.cursor else None
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("level", query.level),
            ("event", query.event),
            ("http_status", query.status),
            ("endpoint", query.endpoint),
            ("fingerprint", query.fingerprint),
        ):
            if value is not None:
                clauses.append(f"e.{column} = ?")
                params.append(value)
        has_equality = bool(clauses)
        since = _to_us(query.since) if query.since is not None else None
        until = _to_us(query.until) if query.until is not None else None
        text = (query.q or "").strip()
        wanted = query.limit + 1

        if text and _TOKEN.search(text):
            return await self._query_text(
                text, clauses, params, since, until, before, query.limit
            )
        if text:
            return await self._query_scan(
                text, clauses, params, since, until, before, query.limit
            )
        if query.fingerprint is not None:
            return await self._query_group(
                query.fingerprint, clauses, params, since, until, before, query.limit
            )

        use_ts_index = False
        if since is not None or until is not None:
            bounds = await self._range_bounds(since, until)
            if bounds is None:
                return LogPage(items=[])
            in_range, low_id, high_id = bounds
            if before is not None:
                high_id = min(high_id, before - 1)
            if not has_equality:
                # Walking ids down from high_id reads about wanted / density
                # rows; the ts index reads every row of the range.
                density = in_range / max(high_id - low_id + 1, 1)
                walk = wanted / max(density, 1e-9)
                use_ts_index = in_range * _INDEX_ADVANTAGE < walk
            clauses.append("e.id BETWEEN ? AND ?")
            params.extend([low_id, high_id])
        # "+e.ts" keeps SQLite from the ts index when walking ids is cheaper.
        ts_column = "e.ts" if use_ts_index else "+e.ts"
        if since is not None:
            clauses.append(f"{ts_column} >= ?")
            params.append(since)
        if until is not None:
            clauses.append(f"{ts_column} < ?")
            params.append(until)
        if before is not None:
            clauses.append("e.id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        if use_ts_index:
            sql = (
                f"SELECT {_ENTRY_SELECT} FROM entries e WHERE e.id IN ("
                f"SELECT e.id FROM entries e INDEXED BY entries_ts {where} "
                "ORDER BY e.id DESC LIMIT ?) ORDER BY e.id DESC"
            )
        else:
            sql = (
                f"SELECT {_ENTRY_SELECT} FROM entries e {where} "
                "ORDER BY e.id DESC LIMIT ?"
            )
        rows = await self._fetch(sql, [*params, wanted])
        return _page(rows, query.limit)

    async def _range_bounds(
        self, since: int | None, until: int | None
    ) -> tuple[int, int, int] | None:
        """Count the entries of a time range and bound their ids, or None if empty.

        Whole hours come from hour_counts, the minutes at either end from
        minute_counts; both keep the lowest and highest id written in them.
        """
        first_minute = since // MINUTE_US if since is not None else -(2**40)
        last_minute = (until - 1) // MINUTE_US if until is not None else 2**40
        if last_minute < first_minute:
            return None
        first_hour, last_hour = first_minute // 60, last_minute // 60
        if last_hour <= first_hour + 1:
            parts = [
                "SELECT n, min_id, max_id FROM minute_counts "
                "WHERE minute >= :first_minute AND minute <= :last_minute"
            ]
        else:
            parts = [
                "SELECT n, min_id, max_id FROM minute_counts "
                "WHERE minute >= :first_minute AND minute < :low_edge",
                "SELECT n, min_id, max_id FROM hour_counts "
                "WHERE hour > :first_hour AND hour < :last_hour",
                "SELECT n, min_id, max_id FROM minute_counts "
                "WHERE minute >= :high_edge AND minute <= :last_minute",
            ]
        rows = await self._fetch(
            "SELECT coalesce(sum(n), 0), min(min_id), max(max_id) FROM ("
            + " UNION ALL ".join(parts)
            + ")",
            {
                "first_minute": first_minute,
                "last_minute": last_minute,
                "first_hour": first_hour,
                "last_hour": last_hour,
                "low_edge": (first_hour + 1) * 60,
                "high_edge": last_hour * 60,
            },
        )
        count, low_id, high_id = rows[0]
        if not count:
            return None
        return int(count), int(low_id), int(high_id)

    async def _query_text(
        self,
        text: str,
        clauses: list[str],
        params: list[Any],
        since: int | None,
        until: int | None,
        before: int | None,
        limit: int,
    ) -> LogPage:
        """FTS5 finds candidates (words in order, the last one a prefix); a plain
        substring test on the candidates keeps exactly what the text matches."""
        # FTS5 ends a query string at a NUL byte; the tokenizer drops it
        # anyway, and the substring test below still checks the real text.
        phrase = text.replace("\x00", " ").replace('"', '""')
        match = '"' + phrase + '"'
        if len(_TOKEN.findall(text)[-1]) >= _MIN_PREFIX:
            # The last word may be cut short, as in a search box; shorter
            # prefixes would expand to too many words to stay fast.
            match += " *"
        sql, values = _walk_fts(
            "entries_fts",
            match,
            [*clauses, "flare_contains(e.message, e.error, e.endpoint, ?)"],
            [*params, text.lower()],
            since,
            until,
            before,
        )
        reader = self._read_connection()
        try:
            rows = await reader.execute_fetchall(
                sql, _clean_params([*values, limit + 1])
            )
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise self._error(exc, "search") from exc
            # The text is always a quoted phrase, so FTS5 should accept it; if
            # some input still trips its parser, search without the index.
            logger.debug("FTS5 rejected %r (%s); scanning instead", match, exc)
            return await self._query_scan(
                text, clauses, params, since, until, before, limit
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "search") from exc
        except ValueError as exc:
            raise StorageUnavailable(f"SQLite storage {self.path!r} is closed") from exc
        return _page(list(rows), limit)

    async def _query_group(
        self,
        fingerprint: str,
        clauses: list[str],
        params: list[Any],
        since: int | None,
        until: int | None,
        before: int | None,
        limit: int,
    ) -> LogPage:
        """Return a page of a group's entries, newest first, via ``group_index``.

        ``clauses`` contains ``e.fingerprint = ?`` too, so the index only finds
        candidates and each row's own fingerprint decides.
        """
        token = group_token(_clean_text(fingerprint))
        ids: tuple[int, int] | None = None
        if since is not None or until is not None:
            bounds = await self._range_bounds(since, until)
            if bounds is None:
                return LogPage(items=[])
            ids = bounds[1], bounds[2]
        sql, values = _walk_fts(
            "group_index", f'"{token}"', clauses, params, since, until, before, ids
        )
        rows = await self._fetch(sql, [*values, limit + 1])
        return _page(rows, limit)

    async def _query_scan(
        self,
        text: str,
        clauses: list[str],
        params: list[Any],
        since: int | None,
        until: int | None,
        before: int | None,
        limit: int,
    ) -> LogPage:
        """Match ``text`` as a substring over a window of the newest entries.

        Used for text without letters or digits, which the FTS index does not
        hold. Each page reads at most ``_SCAN_WINDOW`` entries; when the window
        ends before the page is full, ``next_cursor`` continues below it.
        """
        bound_rows = await self._fetch(
            "SELECT id FROM entries WHERE id < ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (before if before is not None else 2**63 - 1, _SCAN_WINDOW - 1),
        )
        floor = int(bound_rows[0][0]) if bound_rows else None
        conditions = list(clauses)
        values = list(params)
        if since is not None:
            conditions.append("+e.ts >= ?")
            values.append(since)
        if until is not None:
            conditions.append("+e.ts < ?")
            values.append(until)
        if before is not None:
            conditions.append("e.id < ?")
            values.append(before)
        if floor is not None:
            conditions.append("e.id >= ?")
            values.append(floor)
        # No letters, so no case to fold: instr() is exact, and fast.
        conditions.append(
            "(instr(e.message, ?) > 0 OR instr(e.error, ?) > 0 "
            "OR instr(e.endpoint, ?) > 0)"
        )
        values.extend([text, text, text])
        sql = (
            f"SELECT {_ENTRY_SELECT} FROM entries e WHERE {' AND '.join(conditions)} "
            "ORDER BY e.id DESC LIMIT ?"
        )
        rows = await self._fetch(sql, [*values, limit + 1])
        page = _page(rows, limit)
        if page.next_cursor is None and floor is not None and floor > 1:
            older = await self._fetch(
                "SELECT 1 FROM entries WHERE id < ? LIMIT 1", (floor,)
            )
            if older:
                page.next_cursor = encode_cursor({"id": str(floor)})
        return page

    # Reads: numbers -------------------------------------------------------

    async def stats(self, now: datetime | None = None) -> Stats:
        since = _to_us((now or utcnow()) - timedelta(hours=24))
        # [since, next minute) from the index, whole minutes up to the next
        # hour from minute_counts, whole hours from hour_counts.
        first_minute = -(-since // MINUTE_US)
        first_hour = -(-first_minute // 60)
        rows = await self._fetch(
            """
            SELECT
                (SELECT value FROM counters WHERE name = 'total'),
                (SELECT max(ts) FROM entries WHERE level = 'ERROR'),
                (SELECT count(*) FROM entries
                    WHERE level = 'ERROR' AND ts >= :since AND ts < :minute_start),
                (SELECT count(*) FROM entries
                    WHERE level = 'WARNING' AND ts >= :since AND ts < :minute_start),
                (SELECT coalesce(sum(n), 0) FROM minute_counts
                    WHERE level = 'ERROR' AND minute >= :first_minute
                    AND minute < :hour_minute),
                (SELECT coalesce(sum(n), 0) FROM minute_counts
                    WHERE level = 'WARNING' AND minute >= :first_minute
                    AND minute < :hour_minute),
                (SELECT coalesce(sum(n), 0) FROM hour_counts
                    WHERE level = 'ERROR' AND hour >= :first_hour),
                (SELECT coalesce(sum(n), 0) FROM hour_counts
                    WHERE level = 'WARNING' AND hour >= :first_hour)
            """,
            {
                "since": since,
                "minute_start": first_minute * MINUTE_US,
                "first_minute": first_minute,
                "hour_minute": first_hour * 60,
                "first_hour": first_hour,
            },
        )
        total, latest, *counts = rows[0]
        errors = sum(int(value) for value in counts[0::2])
        warnings = sum(int(value) for value in counts[1::2])
        return Stats(
            errors_24h=errors,
            warnings_24h=warnings,
            total=max(int(total or 0), 0),
            latest_error_at=_from_us(latest) if latest is not None else None,
        )

    async def timeline(
        self, hours: int = 24, now: datetime | None = None
    ) -> list[TimelineBucket]:
        starts = timeline_starts(hours, now)
        if not starts:
            return []
        first_hour = _to_us(starts[0]) // HOUR_US
        end_hour = _to_us(starts[-1]) // HOUR_US + 1
        rows = await self._fetch(
            "SELECT hour, level, n FROM hour_counts WHERE hour >= ? AND hour < ?",
            (first_hour, end_hour),
        )
        buckets = {
            _to_us(start) // HOUR_US: TimelineBucket(start=start) for start in starts
        }
        for hour, level, count in rows:
            bucket = buckets.get(int(hour))
            if bucket is None:
                continue
            if level == "ERROR":
                bucket.errors += int(count)
            else:
                bucket.warnings += int(count)
        return list(buckets.values())

    # Reads: groups --------------------------------------------------------

    async def get_group(self, fingerprint: str) -> ErrorGroup | None:
        rows = await self._fetch(
            f"SELECT {_GROUP_SELECT} FROM error_groups WHERE fingerprint = ?",
            (fingerprint,),
        )
        return _group_from_row(rows[0]) if rows else None

    async def query_groups(self, query: GroupQuery) -> GroupPage:
        column = _GROUP_SORT_COLUMNS[query.sort]
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is None:
            clauses.append("status != 'ignored'")
        else:
            clauses.append("status = ?")
            params.append(query.status)
        if query.level is not None:
            clauses.append("level = ?")
            params.append(query.level)
        if query.q:
            clauses.append("flare_contains(title, NULL, NULL, ?)")
            params.append(query.q.lower())
        if query.cursor:
            value, fingerprint = _decode_group_cursor(query.cursor)
            clauses.append(f"({column}, fingerprint) < (?, ?)")
            params.extend([value, fingerprint])
        sql = (
            f"SELECT {_GROUP_SELECT} FROM error_groups WHERE {' AND '.join(clauses)} "
            f"ORDER BY {column} DESC, fingerprint DESC LIMIT ?"
        )
        rows = await self._fetch(sql, [*params, query.limit + 1])
        groups = [_group_from_row(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            sort_value = last[GROUP_COLUMNS.index(column)]
            next_cursor = encode_cursor({"v": sort_value, "f": last[0]})
        return GroupPage(items=groups, next_cursor=next_cursor)

    async def group_sparklines(
        self, fingerprints: Sequence[str], hours: int = 24, now: datetime | None = None
    ) -> dict[str, list[int]]:
        starts = timeline_starts(hours, now)
        lines = {fingerprint: [0] * hours for fingerprint in fingerprints}
        if not lines or not starts:
            return lines
        first_hour = _to_us(starts[0]) // HOUR_US
        last_hour = _to_us(starts[-1]) // HOUR_US
        # Stored fingerprints are cleaned of lone surrogates: map them back.
        requested = {_clean_text(fingerprint): fingerprint for fingerprint in lines}
        unique = list(requested)
        # Every hour named, so that each (hour, fingerprint) is a key lookup
        # instead of a walk over every group of the hour range.
        every_hour = list(range(first_hour, last_hour + 1))
        hour_marks = ", ".join("?" for _ in every_hour)
        # SQLite allows a bounded number of parameters: ask in slices.
        for offset in range(0, len(unique), 500):
            chunk = unique[offset : offset + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._fetch(
                "SELECT fingerprint, hour, n FROM group_hours "
                f"WHERE hour IN ({hour_marks}) AND fingerprint IN ({marks})",
                [*every_hour, *chunk],
            )
            for fingerprint, hour, count in rows:
                line = lines[requested[fingerprint]]
                line[int(hour) - first_hour] += int(count)
        return lines


def _walk_fts(
    table: str,
    match: str,
    clauses: list[str],
    params: list[Any],
    since: int | None,
    until: int | None,
    before: int | None,
    ids: tuple[int, int] | None = None,
) -> tuple[str, list[Any]]:
    """Build a query that walks ``table``'s matches newest first and keeps the
    entries that pass ``clauses``. The caller appends the LIMIT value.

    ``ids`` bounds the rowids (lowest, highest) when a time range gives them.
    """
    conditions = [f"{table} MATCH ?"]
    values: list[Any] = [match]
    if ids is not None:
        conditions.append("f.rowid BETWEEN ? AND ?")
        values.extend(ids)
    if before is not None:
        conditions.append("f.rowid < ?")
        values.append(before)
    conditions.extend(clauses)
    values.extend(params)
    if since is not None:
        conditions.append("e.ts >= ?")
        values.append(since)
    if until is not None:
        conditions.append("e.ts < ?")
        values.append(until)
    sql = (
        f"SELECT {_ENTRY_SELECT} FROM {table} f "
        "CROSS JOIN entries e ON e.id = f.rowid "
        f"WHERE {' AND '.join(conditions)} ORDER BY f.rowid DESC LIMIT ?"
    )
    return sql, values
