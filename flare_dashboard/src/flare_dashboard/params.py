"""Parse the API's query parameters; a bad one raises an error that names it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, get_args

from starlette.datastructures import QueryParams

from flare_core.models import GROUP_STATUSES, LEVELS, GroupQuery, GroupSort, LogQuery

__all__ = [
    "MAX_LIMIT",
    "MAX_TIMELINE_HOURS",
    "BadParameter",
    "parse_group_query",
    "parse_group_status",
    "parse_hours",
    "parse_log_query",
]

_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")

MAX_LIMIT = 500
MAX_TIMELINE_HOURS = 720
MAX_TEXT_CHARS = 500
MAX_CURSOR_CHARS = 1000
SORTS: tuple[str, ...] = get_args(GroupSort)


class BadParameter(ValueError):
    """A query or body parameter has an invalid value; ``name`` names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "...")


def _text(
    params: QueryParams, name: str, max_chars: int = MAX_TEXT_CHARS
) -> str | None:
    value = params.get(name)
    if value is None or value.strip() == "":
        return None
    if len(value) > max_chars:
        raise BadParameter(
            name, f"{name} is too long: {len(value)} characters, max {max_chars}"
        )
    return value


def _integer(params: QueryParams, name: str, low: int, high: int) -> int | None:
    value = _text(params, name, 20)
    if value is None:
        return None
    try:
        # ASCII digits only: int() also takes "1_0" and other scripts' digits.
        if not _ASCII_INTEGER.fullmatch(value):
            raise ValueError(value)
        number = int(value)
    except ValueError:
        raise BadParameter(
            name, f"{name} must be an integer, got {_shown(value)}"
        ) from None
    if not low <= number <= high:
        raise BadParameter(name, f"{name} must lie in {low}-{high}, got {number}")
    return number


def _choice(
    params: QueryParams, name: str, choices: tuple[str, ...], upper: bool
) -> str | None:
    value = _text(params, name, 40)
    if value is None:
        return None
    normalized = value.upper() if upper else value.lower()
    if normalized not in choices:
        raise BadParameter(
            name, f"{name} must be one of {', '.join(choices)}, got {_shown(value)}"
        )
    return normalized


def _time(params: QueryParams, name: str) -> datetime | None:
    value = _text(params, name, 40)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        # An offset can push a time at the ends of the calendar out of range.
        return (
            moment.replace(tzinfo=UTC)
            if moment.tzinfo is None
            else moment.astimezone(UTC)
        )
    except (ValueError, OverflowError):
        raise BadParameter(
            name,
            f"{name} must be an ISO 8601 time such as 2026-01-31T14:00:00Z, "
            f"got {_shown(value)}",
        ) from None


def _limit(params: QueryParams, default: int) -> int:
    limit = _integer(params, "limit", 1, MAX_LIMIT)
    return default if limit is None else limit


def parse_log_query(params: QueryParams, default_limit: int = 50) -> LogQuery:
    """Build a ``LogQuery`` from ``/api/logs`` parameters; empty values mean unset."""
    since = _time(params, "since")
    until = _time(params, "until")
    if since is not None and until is not None and since >= until:
        raise BadParameter("until", "until must be later than since")
    fields: dict[str, Any] = {
        "level": _choice(params, "level", LEVELS, upper=True),
        "event": _text(params, "event"),
        "status": _integer(params, "status", 100, 599),
        "endpoint": _text(params, "endpoint"),
        "fingerprint": _text(params, "fingerprint"),
        "q": _text(params, "q"),
        "since": since,
        "until": until,
        "cursor": _text(params, "cursor", MAX_CURSOR_CHARS),
        "limit": _limit(params, default_limit),
    }
    return LogQuery(**fields)


def parse_group_query(params: QueryParams, default_limit: int = 50) -> GroupQuery:
    """Build a ``GroupQuery`` from ``/api/groups`` parameters; empty means unset."""
    sort = _choice(params, "sort", SORTS, upper=False) or "last_seen"
    fields: dict[str, Any] = {
        "status": _choice(params, "status", GROUP_STATUSES, upper=False),
        "level": _choice(params, "level", LEVELS, upper=True),
        "q": _text(params, "q"),
        "sort": sort,
        "cursor": _text(params, "cursor", MAX_CURSOR_CHARS),
        "limit": _limit(params, default_limit),
    }
    return GroupQuery(**fields)


def parse_hours(params: QueryParams) -> int:
    hours = _integer(params, "hours", 1, MAX_TIMELINE_HOURS)
    return 24 if hours is None else hours


def parse_group_status(body: Any) -> str:
    """Return the ``status`` of a group-status request body."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise BadParameter(
            "status", 'the body must be a JSON object such as {"status": "resolved"}'
        )
    status: str = body["status"]
    if status not in GROUP_STATUSES:
        raise BadParameter(
            "status",
            f"status must be one of {', '.join(GROUP_STATUSES)}, got {_shown(status)}",
        )
    return status
