"""``SQLiteStorage``: Flare's entries and groups in one SQLite file.

Two aiosqlite connections per process: a writer, used by the worker and by
``set_group_status`` under an asyncio lock, and a read-only reader for the
dashboard, so that reads never queue behind a write that waits for another
process's lock. WAL mode lets readers run while a writer commits, and
``BEGIN IMMEDIATE`` with a busy timeout serialises writers across processes.

``SQLiteStorage`` combines ``_base._StorageBase`` (connections, lifecycle,
errors), ``_writes._WritesMixin`` and ``_reads._ReadsMixin``; row conversions
and small helpers are in ``_rows``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import datetime, timedelta

import aiosqlite

from flare_core.errors import StorageUnavailable
from flare_core.models import utcnow

from ._base import _StorageBase
from ._reads import _ReadsMixin
from ._rows import _is_busy, _rollback, _to_us
from ._writes import _WritesMixin
from .schema import (
    GROUP_TOKEN_SQL,
    HOUR_US,
    MINUTE_US,
    floor_div_sql,
    group_token,
)

__all__ = ["SQLiteStorage"]

logger = logging.getLogger("flare_sqlite")

# Retention stays in this module, next to the limits below, because tests
# lower _RETENTION_CHUNK by patching it on flare_sqlite.storage.

# Retention deletes at most this many rows per transaction, so that other
# processes' writes never wait long for the lock.
_RETENTION_CHUNK = 5_000
# ... and spends at most this long per call; the rest waits for the next cycle.
_RETENTION_BUDGET_SECONDS = 2.0
# How long retention waits for another process's write lock before skipping.
_RETENTION_BUSY_MS = 250


_DOOMED_TABLES = (
    "doomed",
    "doomed_minutes",
    "doomed_hour_counts",
    "doomed_hours",
    "doomed_groups",
)


class SQLiteStorage(_ReadsMixin, _WritesMixin, _StorageBase):
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

    # Retention ------------------------------------------------------------

    async def apply_retention(
        self, max_entries: int, max_age: timedelta, now: datetime | None = None
    ) -> int:
        moment = now or utcnow()
        await self._index_late_entries(_to_us(moment))
        cutoff = _to_us(moment - max_age)
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

    async def _index_late_entries(self, now: int) -> None:
        """Add the group tokens that a version 1 process did not write.

        Runs only while the upgrade's 'group_index_check_until' lies ahead,
        and looks at the entries above 'group_index_checked' only.
        """
        marks = await self._fetch(
            "SELECT value FROM meta WHERE key = 'group_index_check_until'"
        )
        if not marks:
            return

        async def body(writer: aiosqlite.Connection) -> None:
            rows = await writer.execute_fetchall(
                "SELECT key, value FROM meta WHERE key IN "
                "('group_index_checked', 'group_index_check_until')"
            )
            values = {key: int(value) for key, value in rows}
            if now > values.get("group_index_check_until", 0):
                await writer.execute(
                    "DELETE FROM meta WHERE key IN "
                    "('group_index_checked', 'group_index_check_until')"
                )
                return

            checked = values.get("group_index_checked", 0)
            late = list(
                await writer.execute_fetchall(
                    "SELECT id, fingerprint FROM entries "
                    "WHERE id > ? AND fingerprint IS NOT NULL ORDER BY id LIMIT ?",
                    (checked, _RETENTION_CHUNK),
                )
            )

            by_group: dict[str, set[int]] = {}
            for entry_id, fingerprint in late:
                by_group.setdefault(fingerprint, set()).add(int(entry_id))
            missing: list[tuple[int, str]] = []
            for fingerprint, ids in by_group.items():
                token = group_token(fingerprint)
                indexed = await writer.execute_fetchall(
                    "SELECT rowid FROM group_index WHERE group_index MATCH ? "
                    "AND rowid BETWEEN ? AND ?",
                    (f'"{token}"', min(ids), max(ids)),
                )
                found = {int(row_id) for (row_id,) in indexed}
                missing.extend((entry_id, token) for entry_id in ids - found)

            if missing:
                await writer.executemany(
                    "INSERT INTO group_index (rowid, token) VALUES (?, ?)", missing
                )
                logger.info(
                    "Flare indexed %d entries that an older flare-sqlite wrote "
                    "to %s after its upgrade",
                    len(missing),
                    self.path,
                )

            if len(late) == _RETENTION_CHUNK:
                mark = int(late[-1][0])
            else:
                top = await writer.execute_fetchall("SELECT max(id) FROM entries")
                mark = max(checked, int(next(iter(top))[0] or 0))
            await writer.execute(
                "UPDATE meta SET value = ? WHERE key = 'group_index_checked'",
                (str(mark),),
            )

        try:
            await self._transaction("index late entries", body)
        except StorageUnavailable as exc:
            if not _is_busy(exc.__cause__):
                raise
            logger.debug("Flare SQLite group index check skipped: %s", exc)

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
        await writer.execute(
            "INSERT INTO group_index (group_index, rowid, token) "
            f"SELECT 'delete', e.id, {GROUP_TOKEN_SQL} {doomed}"
            " AND e.fingerprint IS NOT NULL"
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
