"""An in-process storage: for tests, and a reference for plugin authors.

Everything lives in this process and is lost on restart. The code favours
clarity over speed: queries scan the entries, which is fine for the few
thousand a test writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from .errors import InvalidCursor
from .hookspecs import hookimpl
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
from .storage import (
    decode_cursor,
    encode_cursor,
    hour_floor,
    merge_into_group,
    timeline_starts,
)

__all__ = ["MemoryStorage", "flare_storage"]


class MemoryStorage:
    """Entries in a list, groups in a dict; ids are increasing integers."""

    name = "memory"

    def __init__(self) -> None:
        self.entries: list[FlareLogEntry] = []
        self.groups: dict[str, ErrorGroup] = {}
        self._next_id = 1
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        for entry in entries:
            stored = entry.model_copy(deep=True)
            stored.id = entry.id = str(self._next_id)
            self._next_id += 1
            self.entries.append(stored)
            if stored.fingerprint:
                group = self.groups.get(stored.fingerprint)
                self.groups[stored.fingerprint] = merge_into_group(group, stored)

    async def query(self, query: LogQuery) -> LogPage:
        before = None
        if query.cursor:
            before = _cursor_number(query.cursor, "id")
        needle = (query.q or "").lower()
        items: list[FlareLogEntry] = []
        for entry in reversed(self.entries):
            if before is not None and int(entry.id or 0) >= before:
                continue
            if _matches(entry, query, needle):
                items.append(entry)
                if len(items) > query.limit:
                    break
        next_cursor = None
        if len(items) > query.limit:
            items = items[: query.limit]
            next_cursor = encode_cursor({"id": items[-1].id})
        return LogPage(items=items, next_cursor=next_cursor)

    async def get(self, entry_id: str) -> FlareLogEntry | None:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        return None

    async def stats(self, now: datetime | None = None) -> Stats:
        since = (now or utcnow()) - timedelta(hours=24)
        recent = [entry for entry in self.entries if entry.timestamp >= since]
        errors = [entry for entry in self.entries if entry.level == "ERROR"]
        return Stats(
            errors_24h=sum(1 for entry in recent if entry.level == "ERROR"),
            warnings_24h=sum(1 for entry in recent if entry.level == "WARNING"),
            total=len(self.entries),
            latest_error_at=max((entry.timestamp for entry in errors), default=None),
        )

    async def timeline(
        self, hours: int = 24, now: datetime | None = None
    ) -> list[TimelineBucket]:
        buckets = {
            start: TimelineBucket(start=start) for start in timeline_starts(hours, now)
        }
        for entry in self.entries:
            bucket = buckets.get(hour_floor(entry.timestamp))
            if bucket is None:
                continue
            if entry.level == "ERROR":
                bucket.errors += 1
            else:
                bucket.warnings += 1
        return list(buckets.values())

    async def apply_retention(
        self, max_entries: int, max_age: timedelta, now: datetime | None = None
    ) -> int:
        cutoff = (now or utcnow()) - max_age
        kept = [entry for entry in self.entries if entry.timestamp >= cutoff]
        kept = kept[-max_entries:]
        removed = len(self.entries) - len(kept)
        self.entries = kept
        if removed:
            self._drop_empty_groups()
        return removed

    def _drop_empty_groups(self) -> None:
        counts: dict[str, int] = {}
        for entry in self.entries:
            if entry.fingerprint:
                counts[entry.fingerprint] = counts.get(entry.fingerprint, 0) + 1
        for fingerprint in list(self.groups):
            if fingerprint not in counts:
                del self.groups[fingerprint]
            else:
                self.groups[fingerprint].count = counts[fingerprint]

    async def query_groups(self, query: GroupQuery) -> GroupPage:
        wanted = [
            group for group in self.groups.values() if _group_matches(group, query)
        ]
        wanted.sort(
            key=lambda group: (_sort_value(group, query.sort), group.fingerprint)
        )
        wanted.reverse()
        if query.cursor:
            after = decode_cursor(query.cursor, keys=["v", "f"])
            position = (_cursor_number(query.cursor, "v"), str(after["f"]))
            wanted = [
                group
                for group in wanted
                if (_sort_value(group, query.sort), group.fingerprint) < position
            ]
        page = wanted[: query.limit]
        next_cursor = None
        if len(wanted) > query.limit:
            last = page[-1]
            next_cursor = encode_cursor(
                {"v": _sort_value(last, query.sort), "f": last.fingerprint}
            )
        return GroupPage(items=page, next_cursor=next_cursor)

    async def get_group(self, fingerprint: str) -> ErrorGroup | None:
        return self.groups.get(fingerprint)

    async def set_group_status(
        self, fingerprint: str, status: GroupStatus
    ) -> ErrorGroup | None:
        group = self.groups.get(fingerprint)
        if group is None:
            return None
        group.status = status
        if status == "resolved":
            group.regression = False
        return group

    async def group_sparklines(
        self, fingerprints: Sequence[str], hours: int = 24, now: datetime | None = None
    ) -> dict[str, list[int]]:
        starts = timeline_starts(hours, now)
        index = {start: position for position, start in enumerate(starts)}
        lines = {fingerprint: [0] * hours for fingerprint in fingerprints}
        for entry in self.entries:
            line = lines.get(entry.fingerprint or "")
            position = index.get(hour_floor(entry.timestamp))
            if line is not None and position is not None:
                line[position] += 1
        return lines


def _cursor_number(cursor: str, key: str) -> float:
    """Read one number from a cursor; raise ``InvalidCursor`` when it is not one."""
    value = decode_cursor(cursor, keys=[key])[key]
    try:
        return float(value)
    except (TypeError, ValueError):
        message = f"invalid cursor {cursor[:40]!r}: {key} is not a number"
        raise InvalidCursor(message) from None


def _matches(entry: FlareLogEntry, query: LogQuery, needle: str) -> bool:
    checks = [
        query.level is None or entry.level == query.level,
        query.event is None or entry.event == query.event,
        query.status is None or entry.http_status == query.status,
        query.endpoint is None or entry.endpoint == query.endpoint,
        query.fingerprint is None or entry.fingerprint == query.fingerprint,
        query.since is None or entry.timestamp >= query.since,
        query.until is None or entry.timestamp < query.until,
    ]
    if not all(checks):
        return False
    if not needle:
        return True
    haystack = " ".join(filter(None, (entry.message, entry.error, entry.endpoint)))
    return needle in haystack.lower()


def _group_matches(group: ErrorGroup, query: GroupQuery) -> bool:
    if query.status is None and group.status == "ignored":
        return False
    if query.status is not None and group.status != query.status:
        return False
    if query.level is not None and group.level != query.level:
        return False
    return not query.q or query.q.lower() in group.title.lower()


def _sort_value(group: ErrorGroup, sort: str) -> float:
    if sort == "count":
        return float(group.count)
    moment = group.first_seen if sort == "first_seen" else group.last_seen
    return moment.timestamp()


@hookimpl(trylast=True)
def flare_storage(backend: str) -> MemoryStorage | None:
    return MemoryStorage() if backend == "memory" else None
