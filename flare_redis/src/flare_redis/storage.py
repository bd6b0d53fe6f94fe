"""``RedisStorage``: entries in a Redis stream, with sorted-set indexes.

See the package README for the data model. Writes and retention run as Lua
scripts, so the stream, the indexes and the groups change together.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flare_core import (
    ErrorGroup,
    FlareConfig,
    FlareConfigError,
    FlareLogEntry,
    GroupPage,
    GroupQuery,
    InvalidCursor,
    LogPage,
    LogQuery,
    Stats,
    StorageUnavailable,
    TimelineBucket,
)
from flare_core.models import GROUP_STATUSES, LEVELS, GroupStatus, utcnow
from flare_core.storage import decode_cursor, encode_cursor, timeline_starts

from ._client import Client, Scripts, connect, redacted, translate_errors
from ._codec import (
    decode_entry,
    decode_group,
    encode_queue_item,
    from_micros,
    to_micros,
)
from ._keys import Keys

__all__ = ["RedisStorage"]

logger = logging.getLogger(__name__)

_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
# Queue items from other processes drained per write, besides the batch itself.
DRAIN_LIMIT = 1000
# A write token is remembered this long, so a retried batch is not stored twice.
TOKEN_TTL_SECONDS = 600
# Entries one query may examine before it returns a partial page and a cursor.
SCAN_BUDGET = 5_000
# Entries one retention script removes before the next call goes on.
RETENTION_STEP = 1000
# Tokens remembered for entries whose write has not succeeded yet.
_MAX_PENDING_TOKENS = 100_000
# Ids of invalid stream entries already logged, so each is logged once.
_REPORTED_INVALID: set[str] = set()


class RedisStorage:
    """Flare storage in Redis Streams, safe for many processes and hosts."""

    name = "redis"

    def __init__(self, config: FlareConfig) -> None:
        if not config.redis_url:
            raise FlareConfigError(
                "RedisStorage requires redis_url: set redis_url or FLARE_REDIS_URL",
                option="redis_url",
            )
        self.url = config.redis_url
        secret = config.redis_password
        self._password = secret.get_secret_value() if secret is not None else None
        self.max_connections = config.redis_max_connections
        self.keys = Keys(config.stream_key, config.queue_key)
        # Each write trims the stream to this size, as XADD MAXLEN ~ would, in
        # case retention does not run. apply_retention trims to max_entries.
        self.hard_cap = config.max_entries + max(config.max_entries // 10, 100)
        self.cluster = False
        self._client: Client | None = None
        self._scripts = Scripts()
        self._tokens: dict[int, tuple[FlareLogEntry, str]] = {}

    # Lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        await self.close()
        client, cluster = await connect(self.url, self._password, self.max_connections)
        if cluster:
            try:
                self.keys.check_one_slot()
            except BaseException:
                await client.aclose()
                raise
        self._client, self.cluster = client, cluster
        kind = "Redis Cluster" if cluster else "Redis"
        logger.info("Flare stores entries in %s at %s", kind, redacted(self.url))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise StorageUnavailable(
                "RedisStorage is not started; call start() first", backend="redis"
            )
        return self._client

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        async with translate_errors(self.url, f"run the {name} script"):
            return await self._scripts.run(self.client, name, keys, args)

    # Writes ---------------------------------------------------------------

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        if not entries:
            return
        tokens = [self._token(entry) for entry in entries]
        items = [
            encode_queue_item(entry, token)
            for entry, token in zip(entries, tokens, strict=True)
        ]
        reply = await self._script(
            "write",
            [self.keys.stream, self.keys.queue],
            [DRAIN_LIMIT, self.hard_cap, TOKEN_TTL_SECONDS, *items],
        )
        stored = {
            reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)
        }
        for entry, token in zip(entries, tokens, strict=True):
            entry_id = stored.get(token)
            if entry_id is not None:
                entry.id = entry_id
                self._tokens.pop(id(entry), None)

    def _token(self, entry: FlareLogEntry) -> str:
        """Return the write token of ``entry``, the same one on every retry."""
        pending = self._tokens.get(id(entry))
        if pending is not None and pending[0] is entry:
            return pending[1]
        if len(self._tokens) >= _MAX_PENDING_TOKENS:
            # Entries dropped from a full buffer are never written, so the
            # oldest token can go.
            del self._tokens[next(iter(self._tokens))]
        token = uuid.uuid4().hex
        self._tokens[id(entry)] = (entry, token)
        return token

    async def apply_retention(
        self, max_entries: int, max_age: timedelta, now: datetime | None = None
    ) -> int:
        # Items that other processes pushed onto the queue move into the stream
        # here too, so they are stored even when this process has no batch.
        await self._script(
            "write",
            [self.keys.stream, self.keys.queue],
            [DRAIN_LIMIT, self.hard_cap, TOKEN_TTL_SECONDS],
        )
        cutoff = (now or utcnow()) - max_age
        cutoff_ms = max(to_micros(cutoff) // 1000, 0)
        args = [max_entries, to_micros(cutoff), cutoff_ms, RETENTION_STEP]
        total = 0
        while True:
            removed = int(await self._script("retention", [self.keys.stream], args))
            total += removed
            if removed < RETENTION_STEP:
                return total

    # Entries --------------------------------------------------------------

    async def query(self, query: LogQuery) -> LogPage:
        after = _decode_log_cursor(query.cursor)
        walk, *filters = self._index_keys(query)
        args = [
            "" if query.since is None else to_micros(query.since),
            "" if query.until is None else to_micros(query.until),
            after[0] if after else "",
            after[1] if after else "",
            query.limit + 1,
            SCAN_BUDGET,
            (query.q or "").lower(),
        ]
        reply = await self._script("query", [self.keys.stream, walk, *filters], args)
        state, last_id, last_score = (value.decode() for value in reply[:3])
        flat = reply[3:]
        found = [
            (flat[i].decode(), flat[i + 1].decode(), flat[i + 2])
            for i in range(0, len(flat), 3)
        ]

        next_cursor = None
        if state == "full":
            found = found[: query.limit]
            next_cursor = encode_cursor({"id": found[-1][0], "s": found[-1][1]})
        elif state == "budget":
            next_cursor = encode_cursor({"id": last_id, "s": last_score})
        # An entry that retention removed since the index was read is skipped.
        decoded = (_decode(entry_id, body) for entry_id, _, body in found if body)
        items = [entry for entry in decoded if entry is not None]
        return LogPage(items=items, next_cursor=next_cursor)

    def _index_keys(self, query: LogQuery) -> list[str]:
        """Return the index keys for ``query``, the most selective first."""
        keys = []
        if query.fingerprint is not None:
            keys.append(self.keys.fingerprint(query.fingerprint))
        if query.endpoint is not None:
            keys.append(self.keys.endpoint(query.endpoint))
        if query.status is not None:
            keys.append(self.keys.status(query.status))
        if query.event is not None:
            keys.append(self.keys.event(query.event))
        if query.level is not None:
            keys.append(self.keys.level(query.level))
        return keys or [self.keys.all]

    async def get(self, entry_id: str) -> FlareLogEntry | None:
        if not _STREAM_ID.fullmatch(entry_id):
            return None
        async with translate_errors(self.url, "read an entry"):
            rows: Any = await self.client.xrange(
                self.keys.stream, entry_id, entry_id, count=1
            )
        return _decode_row(rows[0]) if rows else None

    async def stats(self, now: datetime | None = None) -> Stats:
        since = to_micros((now or utcnow()) - timedelta(hours=24))
        async with (
            translate_errors(self.url, "read stats"),
            self.client.pipeline(transaction=False) as pipe,
        ):
            pipe.zcount(self.keys.level("ERROR"), since, "+inf")
            pipe.zcount(self.keys.level("WARNING"), since, "+inf")
            pipe.xlen(self.keys.stream)
            pipe.zrange(self.keys.level("ERROR"), 0, 0, desc=True, withscores=True)
            errors, warnings, total, latest = await pipe.execute()
        return Stats(
            errors_24h=errors,
            warnings_24h=warnings,
            total=total,
            latest_error_at=from_micros(latest[0][1]) if latest else None,
        )

    async def timeline(
        self, hours: int = 24, now: datetime | None = None
    ) -> list[TimelineBucket]:
        starts = timeline_starts(hours, now)
        keys = [self.keys.level(level) for level in LEVELS]
        errors, warnings = await self._hourly_counts(keys, starts)
        return [
            TimelineBucket(start=start, errors=error_count, warnings=warning_count)
            for start, error_count, warning_count in zip(
                starts, errors, warnings, strict=True
            )
        ]

    async def _hourly_counts(
        self, keys: Sequence[str], starts: Sequence[datetime]
    ) -> list[list[int]]:
        """Count each sorted set's entries in each hour from ``starts``."""
        bounds = [bound for start in starts for bound in _hour_range(start)]
        counts = await self._script("counts", [self.keys.stream, *keys], bounds)
        hours = len(starts)
        return [counts[i * hours : (i + 1) * hours] for i in range(len(keys))]

    # Groups ---------------------------------------------------------------

    async def query_groups(self, query: GroupQuery) -> GroupPage:
        key = self.keys.group_sort(query.sort, query.status)
        after = _decode_group_cursor(query.cursor)
        needle = (query.q or "").lower()
        async with translate_errors(self.url, "read groups"):
            start = await self._group_start(key, after)
            # With a level or title filter, read ahead: some groups will not match.
            size = (
                query.limit + 1
                if query.level is None and not needle
                else 4 * query.limit
            )
            found: list[tuple[ErrorGroup, float]] = []
            while len(found) <= query.limit:
                chunk: Any = await self.client.zrange(
                    key, start, start + size - 1, desc=True, withscores=True
                )
                found.extend(await self._matching_groups(chunk, query, needle))
                if len(chunk) < size:
                    break
                start += len(chunk)
        next_cursor = None
        if len(found) > query.limit:
            found = found[: query.limit]
            group, score = found[-1]
            next_cursor = encode_cursor({"v": score, "f": group.fingerprint})
        return GroupPage(items=[group for group, _ in found], next_cursor=next_cursor)

    async def _group_start(self, key: str, after: tuple[float, str] | None) -> int:
        """Return the rank just after the cursor's group in ``key``."""
        if after is None:
            return 0
        rank: Any = await self.client.zrevrank(key, after[1])
        if rank is not None:
            return int(rank) + 1
        # The group changed status or was removed: resume below its score.
        return int(await self.client.zcount(key, after[0], "+inf"))

    async def _matching_groups(
        self, chunk: Sequence[tuple[bytes, float]], query: GroupQuery, needle: str
    ) -> list[tuple[ErrorGroup, float]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for member, _ in chunk:
                pipe.hgetall(self.keys.group(member.decode()))
            rows = await pipe.execute()
        matching = []
        for (member, score), fields in zip(chunk, rows, strict=True):
            if not fields:
                continue
            group = decode_group(member.decode(), fields)
            if query.level is not None and group.level != query.level:
                continue
            if needle and needle not in group.title.lower():
                continue
            matching.append((group, score))
        return matching

    async def get_group(self, fingerprint: str) -> ErrorGroup | None:
        async with translate_errors(self.url, "read a group"):
            fields = await self.client.hgetall(self.keys.group(fingerprint))
        return decode_group(fingerprint, fields) if fields else None

    async def set_group_status(
        self, fingerprint: str, status: GroupStatus
    ) -> ErrorGroup | None:
        if status not in GROUP_STATUSES:
            allowed = ", ".join(GROUP_STATUSES)
            raise ValueError(f"invalid group status {status!r}; use one of {allowed}")
        found = await self._script("status", [self.keys.stream], [fingerprint, status])
        return await self.get_group(fingerprint) if found else None

    async def group_sparklines(
        self, fingerprints: Sequence[str], hours: int = 24, now: datetime | None = None
    ) -> dict[str, list[int]]:
        if not fingerprints:
            return {}
        keys = [self.keys.fingerprint(fingerprint) for fingerprint in fingerprints]
        lines = await self._hourly_counts(keys, timeline_starts(hours, now))
        return dict(zip(fingerprints, lines, strict=True))


def _decode_row(row: Any) -> FlareLogEntry | None:
    """Decode one XRANGE row, or return None for a stream entry Flare did not add."""
    entry_id, fields = row
    body = fields.get(b"e")
    return _decode(entry_id, body) if body is not None else None


def _decode(entry_id: Any, body: Any) -> FlareLogEntry | None:
    """Decode an entry, or log and skip one whose JSON is not a valid entry."""
    try:
        return decode_entry(entry_id, body)
    except ValueError as exc:
        key = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        if len(_REPORTED_INVALID) < 1000 and key not in _REPORTED_INVALID:
            _REPORTED_INVALID.add(key)
            logger.warning("Flare skips invalid stream entry %s: %s", key, exc)
        return None


def _hour_range(start: datetime) -> tuple[int, str]:
    """Return ZCOUNT bounds for the hour from ``start``, end excluded."""
    return to_micros(start), f"({to_micros(start + timedelta(hours=1))}"


def _decode_log_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    payload = decode_cursor(cursor, keys=["id", "s"])
    entry_id, score = payload["id"], payload["s"]
    if not (isinstance(entry_id, str) and _STREAM_ID.fullmatch(entry_id)):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: invalid entry id")
    if not (isinstance(score, str) and re.fullmatch(r"-?\d{1,20}", score)):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: invalid position")
    return entry_id, score


def _decode_group_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    payload = decode_cursor(cursor, keys=["v", "f"])
    value, fingerprint = payload["v"], payload["f"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: invalid position")
    if not isinstance(fingerprint, str):
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}: invalid fingerprint")
    return float(value), fingerprint
