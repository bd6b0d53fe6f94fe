"""``SQLiteStorage``: Flare's entries and groups in one SQLite file.

Two aiosqlite connections per process: a writer, used by the worker and by
``set_group_status`` under an asyncio lock, and a read-only reader for the
dashboard, so that reads never queue behind a write that waits for another
process's lock. WAL mode lets readers run while a writer commits, and
``BEGIN IMMEDIATE`` with a busy timeout serialises writers across processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from flare_core.errors import InvalidCursor, StorageError, StorageUnavailable
from flare_core.models import (
    ErrorGroup,
    FlareLogEntry,
    GroupPage,
    GroupQuery,
    GroupStatus,
    LogPage,
    LogQuery,
    Stats,
    TimelineBucket,
    utcnow,
)
from flare_core.storage import (
    decode_cursor,
    encode_cursor,
    group_title,
    timeline_starts,
)

from .schema import (
    ENTRY_COLUMNS,
    GROUP_COLUMNS,
    HOUR_US,
    MINUTE_US,
    SCHEMA,
    SCHEMA_VERSION,
    TEMP_SCHEMA,
    floor_div_sql,
)

__all__ = ["SQLiteStorage"]

logger = logging.getLogger("flare_sqlite")

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# A run of letters or digits: what FTS5's unicode61 tokenizer keeps as a token.
_TOKEN = re.compile(r"[^\W_]+")

# Retention deletes at most this many rows per transaction, so that other
# processes' writes never wait long for the lock.
_RETENTION_CHUNK = 5_000
# ... and spends at most this long per call; the rest waits for the next cycle.
_RETENTION_BUDGET_SECONDS = 2.0
# How long retention waits for another process's write lock before skipping.
_RETENTION_BUSY_MS = 250

# Text without letters or digits cannot use the FTS index: it is matched as
# a substring over at most this many of the newest entries per page.
_SCAN_WINDOW = 20_000

# The last word of a search is matched as a prefix from this many characters.
_MIN_PREFIX = 3

# The ts index beats a newest-first scan when it has to read fewer rows
# than this factor times what the scan would read.
_INDEX_ADVANTAGE = 4

_DOOMED_TABLES = (
    "doomed",
    "doomed_minutes",
    "doomed_hour_counts",
    "doomed_hours",
    "doomed_groups",
)

_ENTRY_SELECT = ", ".join(f"e.{column}" for column in ENTRY_COLUMNS)
_GROUP_SELECT = ", ".join(GROUP_COLUMNS)
_GROUP_SORT_COLUMNS = {
    "last_seen": "last_seen",
    "count": "count",
    "first_seen": "first_seen",
}


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _clean_text(value: Any) -> Any:
    """Replace lone surrogates, which SQLite cannot store as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _unencodable(value: Any) -> bool:
    if not isinstance(value, str) or value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _contains(
    message: str | None, error: str | None, endpoint: str | None, needle: str
) -> bool:
    """Plain, case-insensitive substring match, as ``MemoryStorage`` does."""
    haystack = " ".join(part for part in (message, error, endpoint) if part)
    return needle in haystack.lower()


class _CommittedThenCancelled(BaseException):
    """A write was cancelled after its COMMIT had gone through."""


class SQLiteStorage:
    """Flare storage in one SQLite file; safe for several processes on one host.

    :param path: The database file; its directory is created when missing.
    :param busy_timeout_ms: How long a write waits for another process's lock
        before the batch is handed back to the worker for a retry.
    """

    name = "sqlite"

    def __init__(
        self, path: str | os.PathLike[str] = "flare.db", *, busy_timeout_ms: int = 5_000
    ) -> None:
        self.path = str(path)
        self.busy_timeout_ms = max(int(busy_timeout_ms), 5_000)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    # Lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._writer is not None and self._reader is not None:
            return
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise StorageError(
                "sqlite_path ':memory:' is not supported: the writer and the dashboard "
                "use separate connections. Use storage_backend='memory' for an "
                "in-process store, or give sqlite_path a file name.",
                backend=self.name,
            )
        self._write_lock = asyncio.Lock()
        try:
            self._make_directory()
            self._writer = await self._connect()
            await self._configure_writer(self._writer)
            self._reader = await self._connect()
            await self._reader.execute("PRAGMA query_only = ON")
            await self._reader.create_function(
                "flare_contains", 4, _contains, deterministic=True
            )
            # Touch the schema from the reader too, so a corrupt file fails here.
            await self._reader.execute_fetchall(
                "SELECT value FROM counters WHERE name = 'total'"
            )
        except BaseException as exc:
            await self.close()
            if isinstance(exc, StorageError):
                raise
            if isinstance(exc, sqlite3.Error | OSError):
                raise self._error(exc, "open") from exc
            raise
        logger.info("Flare SQLite storage opened at %s", self.path)

    async def close(self) -> None:
        """Close both connections; never raises, and may be called repeatedly."""
        for attribute in ("_reader", "_writer"):
            connection: aiosqlite.Connection | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if connection is None:
                continue
            try:
                await connection.close()
            except Exception:
                logger.debug(
                    "closing a SQLite connection to %s failed", self.path, exc_info=True
                )

    def _make_directory(self) -> None:
        parent = Path(self.path).expanduser().parent
        if not parent.exists():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"Cannot create the directory {str(parent)!r} for the SQLite "
                    f"database {self.path!r}: {exc}. Create it, or set sqlite_path "
                    "(FLARE_SQLITE_PATH) to a file in a writable directory.",
                    backend=self.name,
                ) from exc

    async def _connect(self) -> aiosqlite.Connection:
        # aiosqlite stops its thread after a failed open but does not wait for
        # it, so the thread may outlive the event loop and fail there. Opening
        # the file once with sqlite3 first makes an unopenable path fail here;
        # it takes well under a millisecond and runs only at start.
        _probe_open(os.path.expanduser(self.path))
        connection = await aiosqlite.connect(
            os.path.expanduser(self.path),
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
        )
        try:
            await connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            await connection.execute("PRAGMA cache_size = -32000")
            await connection.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _configure_writer(self, writer: aiosqlite.Connection) -> None:
        mode = await self._set_wal(writer)
        if mode != "wal":
            raise StorageError(
                f"SQLite database {self.path!r} cannot use WAL mode (journal_mode is "
                f"{mode!r}); Flare needs WAL for concurrent readers and writers. "
                "Put the file on a local file system, or set sqlite_path elsewhere.",
                backend=self.name,
            )
        await writer.execute("PRAGMA synchronous = NORMAL")
        await self._create_schema(writer)
        await writer.executescript(TEMP_SCHEMA)

    async def _set_wal(self, writer: aiosqlite.Connection) -> str:
        # Switching to WAL needs a moment of exclusive access; several worker
        # processes starting at once may collide, so retry briefly.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                rows = await writer.execute_fetchall("PRAGMA journal_mode = WAL")
                return str(next(iter(rows))[0]).lower()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _create_schema(self, writer: aiosqlite.Connection) -> None:
        await writer.execute("BEGIN IMMEDIATE")
        try:
            rows = await writer.execute_fetchall(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'"
            )
            if rows:
                version_rows = await writer.execute_fetchall(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                )
                version = (
                    int(next(iter(version_rows))[0]) if version_rows else SCHEMA_VERSION
                )
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"SQLite database {self.path!r} has schema version "
                        f"{version}, newer than this flare-sqlite understands "
                        f"({SCHEMA_VERSION}). Upgrade flare-sqlite, or set "
                        "sqlite_path to another file.",
                        backend=self.name,
                    )
            for statement in _statements(SCHEMA):
                await writer.execute(statement)
            await writer.execute("COMMIT")
        except BaseException:
            await _rollback(writer)
            raise

    # Errors ---------------------------------------------------------------

    def _error(self, exc: BaseException, action: str) -> StorageError:
        message = str(exc)
        lowered = message.lower()
        path = self.path
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return StorageUnavailable(
                f"SQLite database {path!r} is locked by another connection ({action}): "
                f"{message}. Flare retries; if this lasts, look for a process "
                "holding a long transaction on the file.",
                backend=self.name,
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in lowered
            or "malformed" in lowered
            or "corrupt" in lowered
        ):
            return StorageError(
                f"SQLite file {path!r} is corrupt or not a database ({message}). "
                "Move the file aside (Flare creates a new one at the next start) "
                "or restore it from a backup, or set sqlite_path "
                "(FLARE_SQLITE_PATH) to another file.",
                backend=self.name,
            )
        if (
            "unable to open" in lowered
            or "readonly" in lowered
            or "read-only" in lowered
            or "permission" in lowered
            or isinstance(exc, PermissionError)
        ):
            return StorageError(
                f"Cannot open the SQLite database {path!r} for writing ({message}). "
                "Make the file and its directory writable by this process (WAL "
                "mode also creates -wal and -shm files beside it), or set sqlite_path "
                "(FLARE_SQLITE_PATH) to a writable location.",
                backend=self.name,
            )
        if isinstance(exc, sqlite3.OperationalError | OSError):
            return StorageUnavailable(
                f"SQLite database {path!r} failed to {action}: {message}",
                backend=self.name,
            )
        return StorageError(
            f"SQLite database {path!r} failed to {action}: {message}", backend=self.name
        )

    async def _guard(self, action: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc
        except ValueError as exc:
            if (
                "closed" in str(exc).lower()
                or "no active connection" in str(exc).lower()
            ):
                raise StorageUnavailable(
                    f"SQLite storage {self.path!r} is closed", backend=self.name
                ) from exc
            raise

    def _read_connection(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageUnavailable(
                f"SQLite storage {self.path!r} is not started", backend=self.name
            )
        return self._reader

    def _write_connection(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StorageUnavailable(
                f"SQLite storage {self.path!r} is not started", backend=self.name
            )
        return self._writer

    async def _fetch(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[Any]:
        reader = self._read_connection()
        return list(await self._guard("read", reader.execute_fetchall(sql, params)))

    async def _transaction(
        self,
        action: str,
        body: Callable[[aiosqlite.Connection], Awaitable[T]],
        committed_anyway: Callable[[], None] | None = None,
    ) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction; roll back on failure."""
        async with self._write_lock:
            writer = self._write_connection()

            async def run() -> T:
                committing = False
                try:
                    await writer.execute("BEGIN IMMEDIATE")
                    result = await body(writer)
                    committing = True
                    await writer.execute("COMMIT")
                except BaseException as exc:
                    # aiosqlite runs calls in order: when the rollback is done,
                    # so is a BEGIN or COMMIT that a cancellation interrupted.
                    rolled_back = await asyncio.shield(_rollback(writer))
                    cancelled = isinstance(exc, asyncio.CancelledError)
                    if committing and cancelled and not rolled_back:
                        raise _CommittedThenCancelled from exc
                    raise
                return result

            try:
                return await self._guard(action, run())
            except _CommittedThenCancelled:
                if committed_anyway is not None:
                    committed_anyway()
                raise asyncio.CancelledError from None

    # Writes ---------------------------------------------------------------

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        entries = await self._not_yet_written(entries)
        if not entries:
            return
        rows = [_entry_row(entry) for entry in entries]
        # Core already drops lone surrogates; an entry built by hand may still
        # carry one, which SQLite cannot encode.
        rows = [
            tuple(_clean_text(value) if _unencodable(value) else value for value in row)
            for row in rows
        ]

        assigned: list[int] = []

        async def body(writer: aiosqlite.Connection) -> list[int]:
            sequence = await writer.execute_fetchall(
                "SELECT seq FROM sqlite_sequence WHERE name = 'entries'"
            )
            first = (int(next(iter(sequence))[0]) if sequence else 0) + 1
            ids = list(range(first, first + len(rows)))
            placeholders = ", ".join("?" for _ in ENTRY_COLUMNS)
            insert = (
                f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) "
                f"VALUES ({placeholders})"
            )
            values = [(entry_id, *row) for entry_id, row in zip(ids, rows, strict=True)]
            await writer.executemany(insert, values)
            await self._update_counts(writer, entries, rows, ids)
            assigned[:] = ids
            return ids

        def set_ids() -> None:
            for entry, entry_id in zip(entries, assigned, strict=True):
                entry.id = str(entry_id)

        # When cancelled while COMMIT ran and it went through, the entries
        # still get their ids, so that a retry of this batch skips them.
        await self._transaction("write", body, committed_anyway=set_ids)
        set_ids()

    async def _not_yet_written(
        self, entries: Sequence[FlareLogEntry]
    ) -> Sequence[FlareLogEntry]:
        """Drop entries that an earlier, interrupted call already stored."""
        carrying = {
            int(entry.id): _to_us(entry.timestamp)
            for entry in entries
            if entry.id is not None and entry.id.isdigit() and len(entry.id) <= 18
        }
        if not carrying or self._reader is None:
            return entries
        marks = ", ".join("?" for _ in carrying)
        rows = await self._fetch(
            f"SELECT id, ts FROM entries WHERE id IN ({marks})", list(carrying)
        )
        stored = {str(row_id) for row_id, ts in rows if carrying.get(row_id) == ts}
        if not stored:
            return entries
        return [entry for entry in entries if entry.id not in stored]

    async def _update_counts(
        self,
        writer: aiosqlite.Connection,
        entries: Sequence[FlareLogEntry],
        rows: Sequence[tuple[Any, ...]],
        ids: Sequence[int],
    ) -> None:
        minutes: dict[tuple[int, str], list[int]] = {}
        hour_levels: dict[tuple[int, str], list[int]] = {}
        hours: dict[tuple[str, int], int] = {}
        groups: dict[str, dict[str, Any]] = {}
        for entry, row, entry_id in zip(entries, rows, ids, strict=True):
            ts = row[0]
            for tally, key in (
                (minutes, (ts // MINUTE_US, entry.level)),
                (hour_levels, (ts // HOUR_US, entry.level)),
            ):
                counted = tally.get(key)
                if counted is None:
                    tally[key] = [1, entry_id, entry_id]
                else:
                    counted[0] += 1
                    counted[2] = entry_id
            fingerprint = entry.fingerprint
            if not fingerprint:
                continue
            hour_key = (fingerprint, ts // HOUR_US)
            hours[hour_key] = hours.get(hour_key, 0) + 1
            group = groups.get(fingerprint)
            if group is None:
                # What merge_into_group makes of a group's first entry.
                groups[fingerprint] = {
                    "fingerprint": fingerprint,
                    "title": _clean_text(group_title(entry)),
                    "level": entry.level,
                    "event": _clean_text(entry.event),
                    "endpoint": _clean_text(entry.route or entry.endpoint),
                    "count": 1,
                    "first_seen": ts,
                    "last_seen": ts,
                    "latest_entry_id": str(entry_id),
                }
                continue
            group["count"] += 1
            if ts >= group["last_seen"]:
                group["last_seen"] = ts
                group["latest_entry_id"] = str(entry_id)
                group["level"] = entry.level
        for table, unit, per_level in (
            ("minute_counts", "minute", minutes),
            ("hour_counts", "hour", hour_levels),
        ):
            await writer.executemany(
                f"INSERT INTO {table} ({unit}, level, n, min_id, max_id) "
                "VALUES (?, ?, ?, ?, ?) "
                f"ON CONFLICT ({unit}, level) DO UPDATE SET n = n + excluded.n, "
                "min_id = min(min_id, excluded.min_id), "
                "max_id = max(max_id, excluded.max_id)",
                [
                    (when, level, *counted)
                    for (when, level), counted in per_level.items()
                ],
            )
        if hours:
            await writer.executemany(
                "INSERT INTO group_hours (fingerprint, hour, n) VALUES (?, ?, ?) "
                "ON CONFLICT (fingerprint, hour) DO UPDATE SET n = n + excluded.n",
                [(fp, hour, count) for (fp, hour), count in hours.items()],
            )
        if groups:
            # merge_into_group, batched: the batch's latest entry wins ties, a
            # resolved group becomes an unresolved regression, ignored stays.
            await writer.executemany(
                """
                INSERT INTO error_groups (
                    fingerprint, title, level, event, endpoint, count,
                    first_seen, last_seen, status, regression, latest_entry_id
                ) VALUES (
                    :fingerprint, :title, :level, :event, :endpoint, :count,
                    :first_seen, :last_seen, 'unresolved', 0, :latest_entry_id
                )
                ON CONFLICT (fingerprint) DO UPDATE SET
                    count = count + excluded.count,
                    level = CASE WHEN excluded.last_seen >= last_seen
                        THEN excluded.level ELSE level END,
                    latest_entry_id = CASE WHEN excluded.last_seen >= last_seen
                        THEN excluded.latest_entry_id ELSE latest_entry_id END,
                    last_seen = max(last_seen, excluded.last_seen),
                    regression = CASE WHEN status = 'resolved'
                        THEN 1 ELSE regression END,
                    status = CASE WHEN status = 'resolved'
                        THEN 'unresolved' ELSE status END
                """,
                list(groups.values()),
            )
        await writer.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'total'",
            (len(entries),),
        )

    async def set_group_status(
        self, fingerprint: str, status: GroupStatus
    ) -> ErrorGroup | None:
        async def body(writer: aiosqlite.Connection) -> list[Any]:
            return list(
                await writer.execute_fetchall(
                    f"""
                    UPDATE error_groups SET
                        status = :status,
                        regression = CASE WHEN :status = 'resolved'
                            THEN 0 ELSE regression END
                    WHERE fingerprint = :fingerprint
                    RETURNING {_GROUP_SELECT}
                    """,
                    {"status": status, "fingerprint": fingerprint},
                )
            )

        rows = await self._transaction("update a group", body)
        return _group_from_row(rows[0]) if rows else None

    # Retention ------------------------------------------------------------

    async def apply_retention(
        self, max_entries: int, max_age: timedelta, now: datetime | None = None
    ) -> int:
        cutoff = _to_us((now or utcnow()) - max_age)
        removed = 0
        deadline = time.monotonic() + _RETENTION_BUDGET_SECONDS
        while time.monotonic() < deadline:
            if not await self._retention_due(max_entries, cutoff):
                break
            try:
                chunk = await self._retention_chunk(max_entries, cutoff)
            except StorageUnavailable as exc:
                if not _is_busy(exc.__cause__):
                    raise
                # Another process writes; its own retention or ours next cycle
                # does the work. Not an error.
                logger.debug("Flare SQLite retention skipped: %s", exc)
                break
            removed += chunk
            if chunk < _RETENTION_CHUNK:
                break
        return removed

    async def _retention_due(self, max_entries: int, cutoff: int) -> bool:
        rows = await self._fetch(
            "SELECT (SELECT value FROM counters WHERE name = 'total') > ?"
            " OR EXISTS (SELECT 1 FROM entries WHERE ts < ?)",
            (max_entries, cutoff),
        )
        return bool(rows[0][0])

    async def _retention_chunk(self, max_entries: int, cutoff: int) -> int:
        async with self._write_lock:
            writer = self._write_connection()
            short = f"PRAGMA busy_timeout = {_RETENTION_BUSY_MS}"
            restore = f"PRAGMA busy_timeout = {self.busy_timeout_ms}"

            async def run() -> int:
                try:
                    await writer.execute(short)
                    try:
                        await writer.execute("BEGIN IMMEDIATE")
                    finally:
                        await asyncio.shield(writer.execute(restore))
                    removed = await self._delete_chunk(writer, max_entries, cutoff)
                    await writer.execute("COMMIT")
                except BaseException:
                    await asyncio.shield(_rollback(writer))
                    raise
                return removed

            return await self._guard("apply retention", run())

    async def _delete_chunk(
        self, writer: aiosqlite.Connection, max_entries: int, cutoff: int
    ) -> int:
        for table in _DOOMED_TABLES:
            await writer.execute(f"DELETE FROM temp.{table}")
        # Entries too old first, then the oldest beyond the count cap.
        cursor = await writer.execute(
            "INSERT INTO temp.doomed (id) "
            "SELECT id FROM entries WHERE ts < ? ORDER BY ts LIMIT ?",
            (cutoff, _RETENTION_CHUNK),
        )
        aged = cursor.rowcount
        if aged < _RETENTION_CHUNK:
            total_rows = await writer.execute_fetchall(
                "SELECT value FROM counters WHERE name = 'total'"
            )
            total = int(next(iter(total_rows))[0])
            excess = min(total - aged - max_entries, _RETENTION_CHUNK - aged)
            if excess > 0:
                await writer.execute(
                    "INSERT OR IGNORE INTO temp.doomed (id) SELECT id FROM entries "
                    "WHERE id NOT IN (SELECT id FROM temp.doomed) ORDER BY id LIMIT ?",
                    (excess,),
                )
        minute = floor_div_sql("e.ts", MINUTE_US)
        hour = floor_div_sql("e.ts", HOUR_US)
        doomed = "FROM entries e WHERE e.id IN (SELECT id FROM temp.doomed)"
        await writer.execute(
            "INSERT INTO temp.doomed_minutes "
            f"SELECT {minute}, e.level, count(*) {doomed}"
            " GROUP BY 1, 2"
        )
        await writer.execute(
            "INSERT INTO temp.doomed_hour_counts "
            f"SELECT {hour}, e.level, count(*) {doomed}"
            " GROUP BY 1, 2"
        )
        await writer.execute(
            "INSERT INTO temp.doomed_hours "
            f"SELECT e.fingerprint, {hour}, count(*) {doomed}"
            " AND e.fingerprint IS NOT NULL GROUP BY 1, 2"
        )
        await writer.execute(
            f"INSERT INTO temp.doomed_groups SELECT e.fingerprint, count(*) {doomed}"
            " AND e.fingerprint IS NOT NULL GROUP BY 1"
        )
        cursor = await writer.execute(
            "DELETE FROM entries WHERE id IN (SELECT id FROM temp.doomed)"
        )
        removed = cursor.rowcount
        if removed <= 0:
            return 0
        await writer.execute(
            "UPDATE minute_counts SET n = n - d.c FROM temp.doomed_minutes d "
            "WHERE minute_counts.minute = d.minute AND minute_counts.level = d.level"
        )
        await writer.execute(
            "DELETE FROM minute_counts WHERE n <= 0 AND (minute, level) IN "
            "(SELECT minute, level FROM temp.doomed_minutes)"
        )
        await writer.execute(
            "UPDATE hour_counts SET n = n - d.c FROM temp.doomed_hour_counts d "
            "WHERE hour_counts.hour = d.hour AND hour_counts.level = d.level"
        )
        await writer.execute(
            "DELETE FROM hour_counts WHERE n <= 0 AND (hour, level) IN "
            "(SELECT hour, level FROM temp.doomed_hour_counts)"
        )
        await writer.execute(
            "UPDATE group_hours SET n = n - d.c FROM temp.doomed_hours d "
            "WHERE group_hours.fingerprint = d.fingerprint "
            "AND group_hours.hour = d.hour"
        )
        await writer.execute(
            "DELETE FROM group_hours WHERE n <= 0 AND (fingerprint, hour) IN "
            "(SELECT fingerprint, hour FROM temp.doomed_hours)"
        )
        await writer.execute(
            "UPDATE error_groups SET count = count - d.c FROM temp.doomed_groups d "
            "WHERE error_groups.fingerprint = d.fingerprint"
        )
        # A group whose every entry is gone goes too.
        await writer.execute(
            "DELETE FROM error_groups WHERE count <= 0 AND fingerprint IN "
            "(SELECT fingerprint FROM temp.doomed_groups)"
        )
        await writer.execute(
            "UPDATE counters SET value = value - ? WHERE name = 'total'", (removed,)
        )
        return int(removed)

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
        match = '"' + text.replace('"', '""') + '"'
        if len(_TOKEN.findall(text)[-1]) >= _MIN_PREFIX:
            # The last word may be cut short, as in a search box; shorter
            # prefixes would expand to too many words to stay fast.
            match += " *"
        conditions = ["entries_fts MATCH ?"]
        values: list[Any] = [match]
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
        conditions.append("flare_contains(e.message, e.error, e.endpoint, ?)")
        values.append(text.lower())
        sql = (
            f"SELECT {_ENTRY_SELECT} FROM entries_fts f "
            "CROSS JOIN entries e ON e.id = f.rowid "
            f"WHERE {' AND '.join(conditions)} ORDER BY f.rowid DESC LIMIT ?"
        )
        reader = self._read_connection()
        try:
            rows = await reader.execute_fetchall(sql, [*values, limit + 1])
        except sqlite3.OperationalError as exc:
            if _is_busy(exc) or "fts5" not in str(exc).lower():
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
        unique = list(lines)
        # SQLite allows a bounded number of parameters: ask in slices.
        for offset in range(0, len(unique), 500):
            chunk = unique[offset : offset + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._fetch(
                "SELECT fingerprint, hour, n FROM group_hours "
                f"WHERE fingerprint IN ({marks}) "
                "AND hour >= ? AND hour <= ?",
                [*chunk, first_hour, last_hour],
            )
            for fingerprint, hour, count in rows:
                lines[fingerprint][int(hour) - first_hour] += int(count)
        return lines


# Rows -----------------------------------------------------------------------


def _entry_row(entry: FlareLogEntry) -> tuple[Any, ...]:
    """Return the values of every column but ``id``, in ``ENTRY_COLUMNS`` order."""
    context = json.dumps(
        entry.context, ensure_ascii=False, default=str, separators=(",", ":")
    )
    return (
        _to_us(entry.timestamp),
        entry.level,
        entry.event,
        entry.http_status,
        entry.endpoint,
        entry.fingerprint,
        entry.route,
        entry.http_method,
        entry.request_id,
        entry.ip_address,
        entry.duration_ms,
        entry.exception_type,
        entry.message,
        entry.error,
        context,
        entry.stack_trace,
    )


def _entry_from_row(row: Sequence[Any]) -> FlareLogEntry:
    values = dict(zip(ENTRY_COLUMNS, row, strict=True))
    ts = values.pop("ts")
    context = values.pop("context")
    values["id"] = str(values["id"])
    try:
        parsed = json.loads(context) if context else {}
    except ValueError:
        parsed = {"_raw": context}
    return FlareLogEntry(
        timestamp=_from_us(ts),
        context=parsed if isinstance(parsed, dict) else {"_value": parsed},
        **values,
    )


def _group_from_row(row: Sequence[Any]) -> ErrorGroup:
    values = dict(zip(GROUP_COLUMNS, row, strict=True))
    values["first_seen"] = _from_us(values["first_seen"])
    values["last_seen"] = _from_us(values["last_seen"])
    values["regression"] = bool(values["regression"])
    return ErrorGroup(**values)


def _page(rows: Sequence[Any], limit: int) -> LogPage:
    items = [_entry_from_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor({"id": items[-1].id})
    return LogPage(items=items, next_cursor=next_cursor)


def _decode_entry_cursor(cursor: str) -> int:
    payload = decode_cursor(cursor, keys=["id"])
    value = payload["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: bad id")
    try:
        number = int(value)
    except ValueError:
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: bad id") from None
    if not 0 <= number < 2**63:
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: bad id")
    return number


def _decode_group_cursor(cursor: str) -> tuple[int, str]:
    payload = decode_cursor(cursor, keys=["v", "f"])
    value, fingerprint = payload["v"], payload["f"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -(2**63) <= value < 2**63
        or not isinstance(fingerprint, str)
    ):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: bad position")
    return value, fingerprint


# Helpers --------------------------------------------------------------------


def _is_busy(exc: BaseException | None) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "locked" in message or "busy" in message


async def _rollback(connection: aiosqlite.Connection) -> bool:
    """Roll back; return False when no transaction was open (or no connection)."""
    try:
        await connection.execute("ROLLBACK")
    except (sqlite3.Error, ValueError):
        return False
    return True


def _statements(script: str) -> Iterable[str]:
    """Split the schema script into statements, keeping trigger bodies whole."""
    statement: list[str] = []
    for line in script.splitlines():
        if not line.strip():
            continue
        statement.append(line)
        candidate = "\n".join(statement)
        if sqlite3.complete_statement(candidate):
            yield candidate
            statement = []
    if statement:
        yield "\n".join(statement)


def _probe_open(path: str) -> None:
    sqlite3.connect(path, timeout=0).close()
