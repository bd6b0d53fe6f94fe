"""Data shapes shared by capture, storage and the dashboard.

Field names are public: storage backends persist them and the JSON API
returns them as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ErrorGroup",
    "FlareLogEntry",
    "GroupPage",
    "GroupQuery",
    "GroupStatus",
    "Level",
    "LogPage",
    "LogQuery",
    "Stats",
    "TimelineBucket",
]

Level = Literal["ERROR", "WARNING"]
GroupStatus = Literal["unresolved", "resolved", "ignored"]
GroupSort = Literal["last_seen", "count", "first_seen"]

LEVELS: tuple[Level, ...] = ("ERROR", "WARNING")
GROUP_STATUSES: tuple[GroupStatus, ...] = ("unresolved", "resolved", "ignored")


def utcnow() -> datetime:
    return datetime.now(UTC)


class FlareLogEntry(BaseModel):
    """One captured error or warning.

    The entry is mutable: enrichment plugins set fields and context keys on
    it, and what they set is what the storage writes. ``id`` is assigned by
    the storage when the entry is written (a Redis stream id, or a SQLite
    row id as a string).
    """

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    id: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    level: Level = "ERROR"
    event: str = "unhandled_exception"
    message: str = ""
    request_id: str | None = None
    endpoint: str | None = None
    route: str | None = None
    http_method: str | None = None
    http_status: int | None = None
    ip_address: str | None = None
    duration_ms: float | None = None
    error: str | None = None
    exception_type: str | None = None
    stack_trace: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class LogQuery(BaseModel):
    """Filters for a page of entries, newest first.

    ``cursor`` is the opaque ``next_cursor`` of the previous page. ``q`` is
    plain text matched against message, error and endpoint; backends must
    treat every character literally.
    """

    model_config = ConfigDict(extra="forbid")

    level: Level | None = None
    event: str | None = None
    status: int | None = None
    endpoint: str | None = None
    fingerprint: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=500)


class LogPage(BaseModel):
    items: list[FlareLogEntry]
    next_cursor: str | None = None


class Stats(BaseModel):
    """Numbers for the dashboard's cards.

    ``dropped`` counts entries this process discarded because its buffer
    was full; the storage reports 0 and the pipeline adds its own count.
    """

    errors_24h: int = 0
    warnings_24h: int = 0
    total: int = 0
    latest_error_at: datetime | None = None
    dropped: int = 0


class TimelineBucket(BaseModel):
    start: datetime
    errors: int = 0
    warnings: int = 0


class ErrorGroup(BaseModel):
    """Every entry that shares a fingerprint: one fault seen once.

    ``count`` is the number of entries written since ``first_seen``; when
    retention removes a group's every entry, the group goes too.
    ``regression`` is set when a resolved group occurs again.
    """

    fingerprint: str
    title: str
    level: Level
    event: str
    endpoint: str | None = None
    count: int = 0
    first_seen: datetime
    last_seen: datetime
    status: GroupStatus = "unresolved"
    regression: bool = False
    latest_entry_id: str | None = None


class GroupQuery(BaseModel):
    """Filters for a page of groups.

    ``status=None`` lists unresolved and resolved groups; ignored groups
    appear only when asked for by name.
    """

    model_config = ConfigDict(extra="forbid")

    status: GroupStatus | None = None
    level: Level | None = None
    q: str | None = None
    sort: GroupSort = "last_seen"
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=500)


class GroupPage(BaseModel):
    items: list[ErrorGroup]
    next_cursor: str | None = None
