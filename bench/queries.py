"""Section 5, dashboard queries at scale: p50 and p95 of each storage read.

The storage is filled through its own ``write_batch`` in batches of 1,000
(entries spread over six days, 200 groups), then each query runs
``--repeats`` times after two warm-up calls.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from flare_core import GroupQuery, LogQuery, Storage
from tests.servers import RedisServer

from .common import LOAD_CPU, percentile, pin, print_table
from .storages import ENDPOINTS, generate_entries, make_storage, resolve_backend

FILL_BATCH = 1_000
PAGE = 50
TARGET_P95_MS = {"sqlite": 20.0, "redis": 50.0, "memory": 20.0}


async def fill(storage: Storage, count: int, now: datetime) -> float:
    """Write ``count`` entries in batches; return entries per second."""
    entries = generate_entries(count, now=now)
    started = time.perf_counter()
    while batch := list(itertools.islice(entries, FILL_BATCH)):
        await storage.write_batch(batch)
    return count / (time.perf_counter() - started)


async def deep_cursor(storage: Storage, depth: int) -> tuple[str | None, int]:
    """Page with the largest page size until ``depth`` entries are behind the cursor."""
    cursor: str | None = None
    seen = 0
    while seen < depth:
        page = await storage.query(LogQuery(limit=500, cursor=cursor))
        seen += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return cursor, seen


def query_plan(
    storage: Storage, now: datetime, cursor: str | None, fingerprint: str, entry_id: str
) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Name each dashboard read and the call that performs it."""
    endpoint = ENDPOINTS[3].replace("{item_id}", "42")
    return {
        "newest page": lambda: storage.query(LogQuery(limit=PAGE)),
        "level=WARNING": lambda: storage.query(LogQuery(level="WARNING", limit=PAGE)),
        "event=http_exception": lambda: storage.query(
            LogQuery(event="http_exception", limit=PAGE)
        ),
        "status=404": lambda: storage.query(LogQuery(status=404, limit=PAGE)),
        "endpoint": lambda: storage.query(LogQuery(endpoint=endpoint, limit=PAGE)),
        "fingerprint": lambda: storage.query(
            LogQuery(fingerprint=fingerprint, limit=PAGE)
        ),
        "since 1 h ago": lambda: storage.query(
            LogQuery(since=now - timedelta(hours=1), limit=PAGE)
        ),
        "until 5 days ago": lambda: storage.query(
            LogQuery(until=now - timedelta(days=5), limit=PAGE)
        ),
        "deep page by cursor": lambda: storage.query(
            LogQuery(cursor=cursor, limit=PAGE)
        ),
        "full-text q=deadlock": lambda: storage.query(
            LogQuery(q="deadlock", limit=PAGE)
        ),
        "full-text q=(no match)": lambda: storage.query(
            LogQuery(q="zzqx-no-such-word", limit=PAGE)
        ),
        "get by id": lambda: storage.get(entry_id),
        "stats": lambda: storage.stats(now=now),
        "timeline 24 h": lambda: storage.timeline(24, now=now),
        "timeline 7 days": lambda: storage.timeline(168, now=now),
        "groups page": lambda: storage.query_groups(GroupQuery(limit=PAGE)),
        "groups by count": lambda: storage.query_groups(
            GroupQuery(sort="count", limit=PAGE)
        ),
        "group sparklines (50)": lambda: storage.group_sparklines(
            [f"{index:032x}" for index in range(PAGE)], 24, now=now
        ),
    }


async def time_queries(storage: Storage, rows: int, repeats: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    fill_rate = await fill(storage, rows, now)
    cursor, depth = await deep_cursor(storage, rows // 2)
    newest = await storage.query(LogQuery(limit=1))
    entry_id = newest.items[0].id or "1"
    plan = query_plan(storage, now, cursor, f"{7:032x}", entry_id)
    timings: dict[str, Any] = {}
    for name, call in plan.items():
        for _ in range(2):
            result = await call()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = await call()
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = {
            "p50_ms": percentile(samples, 0.5),
            "p95_ms": percentile(samples, 0.95),
            "max_ms": max(samples),
            "items": _size(result),
        }
    return {
        "rows": rows,
        "fill_rate": fill_rate,
        "cursor_depth": depth,
        "queries": timings,
    }


def _size(result: Any) -> int | None:
    items = getattr(result, "items", None)
    if isinstance(items, list):
        return len(items)
    if isinstance(result, list | dict):
        return len(result)
    return None


async def measure(
    backend: str, rows: int, repeats: int, workdir: Path
) -> dict[str, Any]:
    redis_server: RedisServer | None = None
    options: dict[str, Any] = {}
    if backend == "sqlite":
        options["sqlite_path"] = str(workdir / "queries.db")
    if backend == "redis":
        redis_server = RedisServer().start()
        assert redis_server.process is not None
        pin(redis_server.process.pid, LOAD_CPU)
        options["redis_url"] = redis_server.url
    try:
        storage = make_storage(backend, **options)
        await storage.start()
        try:
            result = await time_queries(storage, rows, repeats)
        finally:
            await storage.close()
        if redis_server is not None:
            client = aioredis.Redis.from_url(redis_server.url)
            result["redis_used_memory_mb"] = (await client.info("memory"))[
                "used_memory"
            ] / 2**20
            await client.aclose()
        return result
    finally:
        if redis_server is not None:
            redis_server.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    notes: list[str] = []
    results: dict[str, Any] = {}
    sizes = {"sqlite": args.sqlite_rows, "redis": args.redis_rows}
    with tempfile.TemporaryDirectory(prefix="flare-queries-") as workdir:
        for requested in args.backends:
            backend, note = resolve_backend(requested)
            if note:
                notes.append(f"{requested}: {note}")
            rows = sizes.get(requested, args.redis_rows)
            print(f"  {requested}: filling {rows:,} entries", flush=True)
            result = asyncio.run(measure(backend, rows, args.repeats, Path(workdir)))
            result["measured"] = backend
            results[requested] = result
            _report(requested, result)
    for note in notes:
        print(f"NOTE: {note}")
    return {"notes": notes, "backends": results}


def _report(name: str, result: dict[str, Any]) -> None:
    target = TARGET_P95_MS.get(result["measured"], 20.0)
    rows = [
        (
            query,
            item["p50_ms"],
            item["p95_ms"],
            item["max_ms"],
            item["items"],
            "yes" if item["p95_ms"] < target else "NO",
        )
        for query, item in result["queries"].items()
    ]
    print_table(
        f"{name}: {result['rows']:,} entries (filled at {result['fill_rate']:,.0f}/s; "
        f"deep cursor at {result['cursor_depth']:,})",
        ["query", "p50 ms", "p95 ms", "max ms", "items", f"p95 < {target:g} ms"],
        rows,
    )
