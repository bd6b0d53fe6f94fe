"""Conversions between entries and groups and what Redis stores."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flare_core import ErrorGroup, FlareLogEntry
from flare_core.storage import group_title

__all__ = [
    "decode_entry",
    "decode_group",
    "encode_queue_item",
    "from_micros",
    "search_text",
    "to_micros",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Return microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _MICROSECOND


def from_micros(value: int | float | bytes | str) -> datetime:
    return EPOCH + timedelta(microseconds=int(float(value)))


def search_text(entry: FlareLogEntry) -> str:
    """Return the lowercase text that full-text search matches against."""
    return " ".join(filter(None, (entry.message, entry.error, entry.endpoint))).lower()


def encode_queue_item(entry: FlareLogEntry, token: str = "") -> bytes:
    """Encode ``entry`` as an item of the queue list.

    The item is a one-line JSON header with the values the indexes need,
    a newline, and the entry as JSON without its ``id``. Another process
    may ``LPUSH`` items built by this function onto the queue. The next
    write or retention cycle of any Flare process moves them into the
    stream. ``token`` makes a retried write idempotent for ten minutes.
    """
    fingerprint = entry.fingerprint or ""
    header = {
        "t": token,
        "ts": str(to_micros(entry.timestamp)),
        "lv": entry.level,
        "ev": entry.event,
        "st": "" if entry.http_status is None else str(entry.http_status),
        "ep": entry.endpoint or "",
        "fp": fingerprint,
        "ti": group_title(entry) if fingerprint else "",
        "ge": entry.route or entry.endpoint or "",
        "s": search_text(entry),
    }
    # json.dumps escapes every control character, so the header contains no newline.
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    body = entry.model_dump_json(exclude={"id"})
    return f"{head}\n{body}".encode()


def decode_entry(entry_id: Any, body: Any) -> FlareLogEntry:
    """Build an entry from its stream id and JSON, as Redis returns them."""
    entry = FlareLogEntry.model_validate_json(body)
    entry.id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return entry


def decode_group(fingerprint: str, fields: Mapping[Any, Any]) -> ErrorGroup:
    """Build an ``ErrorGroup`` from the fields of its Redis hash."""
    values: dict[str, Any] = {
        key.decode(): value.decode() for key, value in fields.items()
    }
    return ErrorGroup(
        fingerprint=fingerprint,
        title=values.get("title", ""),
        level=values.get("level", "ERROR"),
        event=values.get("event", ""),
        endpoint=values.get("endpoint") or None,
        count=int(values.get("count", 0)),
        first_seen=from_micros(values["first"]),
        last_seen=from_micros(values["last"]),
        status=values.get("status", "unresolved"),
        regression=values.get("regression") == "1",
        latest_entry_id=values.get("latest") or None,
    )
