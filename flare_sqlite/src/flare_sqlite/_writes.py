"""``_WritesMixin``: ``write_batch`` with its counter and group upkeep, and
``set_group_status``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from flare_core.models import ErrorGroup, FlareLogEntry, GroupStatus
from flare_core.storage import group_title

from ._base import _StorageBase
from ._rows import (
    _GROUP_SELECT,
    _clean_text,
    _entry_row,
    _group_from_row,
    _to_us,
    _unencodable,
)
from .schema import ENTRY_COLUMNS, HOUR_US, MINUTE_US, group_token

# Position of the fingerprint in a row from ``_entry_row``, which has no id.
_FINGERPRINT_AT = ENTRY_COLUMNS.index("fingerprint") - 1


class _WritesMixin(_StorageBase):
    """Write paths: each call is one transaction on the writer connection."""

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
            tokens = [
                (entry_id, group_token(row[_FINGERPRINT_AT]))
                for entry_id, row in zip(ids, rows, strict=True)
                if row[_FINGERPRINT_AT] is not None
            ]
            if tokens:
                await writer.executemany(
                    "INSERT INTO group_index (rowid, token) VALUES (?, ?)", tokens
                )
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
            fingerprint = row[_FINGERPRINT_AT]
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
                    {"status": status, "fingerprint": _clean_text(fingerprint)},
                )
            )

        rows = await self._transaction("update a group", body)
        return _group_from_row(rows[0]) if rows else None
