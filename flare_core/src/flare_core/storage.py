"""The storage contract every backend implements, and helpers they share."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from .errors import InvalidCursor
from .models import (
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

__all__ = [
    "Storage",
    "decode_cursor",
    "encode_cursor",
    "group_title",
    "hour_floor",
    "merge_into_group",
    "timeline_starts",
]


@runtime_checkable
class Storage(Protocol):
    """The operations the pipeline and the dashboard need from a backend.

    The worker is the only writer in a process: it calls ``write_batch``
    with a batch from the in-process buffer and ``apply_retention`` once
    per cycle. Reads come from the dashboard and may run concurrently with
    writes. Every method may raise ``StorageUnavailable`` when the backend
    cannot be reached; the worker then keeps the batch and retries.
    """

    name: str

    async def start(self) -> None:
        """Open connections and create the schema; called once at startup."""

    async def close(self) -> None:
        """Release connections; called once at shutdown, also after a failed start."""

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        """Store entries in one round-trip, set each ``entry.id``, update groups."""

    async def query(self, query: LogQuery) -> LogPage:
        """Return one page of entries matching ``query``, newest first."""

    async def get(self, entry_id: str) -> FlareLogEntry | None:
        """Return the entry with ``entry_id``, or None."""

    async def stats(self, now: datetime | None = None) -> Stats:
        """Return counts for the last 24 hours before ``now`` and the total."""

    async def timeline(
        self, hours: int = 24, now: datetime | None = None
    ) -> list[TimelineBucket]:
        """Return per-hour counts, oldest first, for ``timeline_starts`` hours."""

    async def apply_retention(
        self, max_entries: int, max_age: timedelta, now: datetime | None = None
    ) -> int:
        """Delete entries over the count cap or older than ``max_age``.

        Returns how many entries were deleted.
        """

    async def query_groups(self, query: GroupQuery) -> GroupPage:
        """Return one page of groups, ordered by ``query.sort`` descending."""

    async def get_group(self, fingerprint: str) -> ErrorGroup | None:
        """Return the group of ``fingerprint``, or None."""

    async def set_group_status(
        self, fingerprint: str, status: GroupStatus
    ) -> ErrorGroup | None:
        """Set a group's status and return it, or None for an unknown group."""

    async def group_sparklines(
        self, fingerprints: Sequence[str], hours: int = 24, now: datetime | None = None
    ) -> dict[str, list[int]]:
        """Return per-hour entry counts of each group for ``timeline_starts`` hours."""


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def timeline_starts(hours: int, now: datetime | None = None) -> list[datetime]:
    """Return the start of each of the last ``hours`` hours, the current one last."""
    current = hour_floor(now or utcnow())
    return [current - timedelta(hours=back) for back in range(hours - 1, -1, -1)]


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: Sequence[str]) -> dict[str, Any]:
    """Decode a cursor from ``encode_cursor``; raise ``InvalidCursor`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError) as exc:
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: {exc}") from None
    if not isinstance(payload, dict) or any(key not in payload for key in keys):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: missing fields")
    return payload


def group_title(entry: FlareLogEntry) -> str:
    """Build a group's title: the exception and its message, or status and route."""
    first_line = (entry.error or entry.message or "").strip().splitlines()
    summary = first_line[0][:200] if first_line else ""
    if entry.exception_type and entry.event != "http_exception":
        name = entry.exception_type.rsplit(".", 1)[-1]
        prefix = f"{name}: " if not summary.startswith(name) else ""
        return f"{prefix}{summary}" if summary else name
    if entry.http_status is not None:
        where = entry.route or entry.endpoint or ""
        method = f"{entry.http_method} " if entry.http_method else ""
        return f"{entry.http_status} {method}{where}".strip()
    return summary or entry.event


def merge_into_group(group: ErrorGroup | None, entry: FlareLogEntry) -> ErrorGroup:
    """Return ``group`` updated by one new entry, or a new group.

    A resolved group that occurs again becomes unresolved and is marked as a
    regression; an ignored group keeps counting and stays ignored.
    """
    if entry.fingerprint is None:
        raise ValueError("entry has no fingerprint; enrichment did not run")
    if group is None:
        return ErrorGroup(
            fingerprint=entry.fingerprint,
            title=group_title(entry),
            level=entry.level,
            event=entry.event,
            endpoint=entry.route or entry.endpoint,
            count=1,
            first_seen=entry.timestamp,
            last_seen=entry.timestamp,
            latest_entry_id=entry.id,
        )
    group.count += 1
    if entry.timestamp >= group.last_seen:
        group.last_seen = entry.timestamp
        group.latest_entry_id = entry.id
        group.level = entry.level
    if group.status == "resolved":
        group.status = "unresolved"
        group.regression = True
    return group
