"""Conversions between Flare's models and SQLite rows, cursor decoders, and
small helpers for timestamps, text, SQLite errors and the schema script."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from flare_core.errors import InvalidCursor
from flare_core.models import ErrorGroup, FlareLogEntry, LogPage
from flare_core.storage import decode_cursor, encode_cursor

from .schema import ENTRY_COLUMNS, GROUP_COLUMNS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

_ENTRY_SELECT = ", ".join(f"e.{column}" for column in ENTRY_COLUMNS)
_GROUP_SELECT = ", ".join(GROUP_COLUMNS)


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


def _clean_params(
    params: Sequence[Any] | dict[str, Any],
) -> Sequence[Any] | dict[str, Any]:
    """Return ``params`` with lone surrogates replaced as ``_clean_text`` does.

    A filter value then matches the stored text it was cleaned into, where
    sqlite3 would otherwise raise UnicodeEncodeError.
    """
    if isinstance(params, dict):
        if not any(_unencodable(value) for value in params.values()):
            return params
        return {key: _clean_text(value) for key, value in params.items()}
    if not any(_unencodable(value) for value in params):
        return params
    return [_clean_text(value) for value in params]


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
