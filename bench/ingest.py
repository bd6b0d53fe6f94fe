"""Section 3, ingest throughput: the worker draining buffered entries into a backend.

Three variants per backend, alternated over the rounds:

- ``worker``: ``Worker.flush`` writes the buffer through ``write_batch`` in
  batches of ``worker_batch_size``, with grouping (every entry has a
  fingerprint);
- ``no grouping``: the same with ``fingerprint=None``, which skips the
  group updates;
- ``raw ceiling``: the rows (SQLite) or stream fields (Redis) that the
  storage itself wrote for a sample, copied and inserted with no Flare code.
  SQLite gets one ``executemany`` in one transaction with aiosqlite, into a
  database the storage created (same tables, indexes and triggers). Redis
  gets pipelined XADD with redis-py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import redis.asyncio as aioredis

from flare_core import FlareConfig, FlareLogEntry, Storage
from flare_core.pipeline import EntryBuffer, Worker
from tests.servers import RedisServer

from .common import LOAD_CPU, median, pin, print_table, rotate
from .storages import NO_TRIM_ENTRIES, generate_entries, make_storage, resolve_backend

SAMPLE = 2_000
PIPELINE_CHUNK = 1_000
VARIANTS = ("worker", "no grouping", "raw ceiling")


class Target:
    """The destination of one run: a fresh SQLite file or an emptied private Redis."""

    def __init__(self, backend: str, workdir: Path, redis_url: str | None) -> None:
        self.backend = backend
        self.workdir = workdir
        self.redis_url = redis_url
        self.runs = 0
        self.path: Path | None = None

    async def fresh_storage(self) -> Storage:
        self.runs += 1
        options: dict[str, Any] = {}
        if self.backend == "sqlite":
            self.discard()
            self.path = self.workdir / f"ingest-{self.runs}.db"
            options["sqlite_path"] = str(self.path)
        if self.backend == "redis":
            assert self.redis_url is not None
            client = aioredis.Redis.from_url(self.redis_url)
            await client.flushdb()
            await client.aclose()
            options["redis_url"] = self.redis_url
        storage = make_storage(self.backend, **options)
        await storage.start()
        return storage

    def discard(self) -> None:
        """Delete the previous run's database, whose dirty pages the kernel
        would otherwise write back during the next run."""
        if self.path is None:
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.path = None


async def drain(storage: Storage, entries: list[FlareLogEntry]) -> float:
    """Buffer ``entries``, let the worker write them all; return entries per second."""
    batch_size = FlareConfig(storage_backend="memory").worker_batch_size
    buffer = EntryBuffer(len(entries) + 1, batch_size)
    for entry in entries:
        buffer.put(entry)
    worker = Worker(
        buffer,
        storage,
        interval=5,
        batch_size=batch_size,
        max_entries=NO_TRIM_ENTRIES,
        retention=timedelta(days=3650),
    )
    started = time.perf_counter()
    if not await worker.flush():
        raise RuntimeError(f"the worker failed to write: {worker.last_error}")
    return len(entries) / (time.perf_counter() - started)


async def sqlite_ceiling(target: Target, count: int) -> float:
    """Insert ``count`` copies of the storage's own rows with one executemany."""
    storage = await target.fresh_storage()
    await storage.write_batch(list(generate_entries(SAMPLE, seed=11)))
    await storage.close()
    assert target.path is not None
    table, columns, rows = await _entry_rows(target.path)
    storage = await target.fresh_storage()
    await storage.close()
    assert target.path is not None
    copies = [row for row, _ in zip(itertools.cycle(rows), range(count), strict=False)]
    placeholders = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({placeholders})'
    async with aiosqlite.connect(target.path) as db:
        await db.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        await db.execute("BEGIN")
        await db.executemany(sql, copies)
        await db.commit()
        elapsed = time.perf_counter() - started
    return count / elapsed


async def _entry_rows(path: Path) -> tuple[str, list[str], list[tuple[Any, ...]]]:
    """Find the table that contains entries and return its rows without the row id."""
    async with aiosqlite.connect(path) as db:
        cursor = await db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE "
            "'CREATE VIRTUAL%' AND name NOT LIKE 'sqlite_%'"
        )
        tables = [row[0] for row in await cursor.fetchall()]
        for table in tables:
            info = await (await db.execute(f'PRAGMA table_info("{table}")')).fetchall()
            names = [row[1] for row in info]
            if "stack_trace" not in names or "request_id" not in names:
                continue
            keep = [row[1] for row in info if not row[5]]  # row[5]: part of the key
            cursor = await db.execute(f'SELECT {", ".join(keep)} FROM "{table}"')
            return table, keep, [tuple(row) for row in await cursor.fetchall()]
    raise RuntimeError(f"no entries table with stack_trace and request_id in {path}")


async def redis_ceiling(target: Target, count: int) -> float:
    """XADD ``count`` copies of the storage's own stream fields, pipelined."""
    storage = await target.fresh_storage()
    await storage.write_batch(list(generate_entries(SAMPLE, seed=11)))
    await storage.close()
    assert target.redis_url is not None
    client = aioredis.Redis.from_url(target.redis_url)
    try:
        streams = [key async for key in client.scan_iter(_type="STREAM")]
        if len(streams) != 1:
            raise RuntimeError(f"expected one stream from the storage, got {streams}")
        stream = streams[0]
        sample = await client.xrange(stream, count=SAMPLE)
        if not sample:
            raise RuntimeError(f"the Redis storage wrote nothing to stream {stream!r}")
        await client.flushdb()
        payloads: Any = itertools.cycle([fields for _, fields in sample])
        started = time.perf_counter()
        for offset in range(0, count, PIPELINE_CHUNK):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(PIPELINE_CHUNK, count - offset)):
                pipe.xadd(stream, next(payloads))
            await pipe.execute()
        return count / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def run_variant(target: Target, variant: str, count: int) -> float:
    if variant == "raw ceiling":
        if target.backend == "sqlite":
            return await sqlite_ceiling(target, count)
        return await redis_ceiling(target, count)
    entries = list(generate_entries(count, grouped=variant == "worker"))
    storage = await target.fresh_storage()
    try:
        return await drain(storage, entries)
    finally:
        await storage.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    notes: list[str] = []
    raw: list[dict[str, Any]] = []
    redis_server: RedisServer | None = None
    with tempfile.TemporaryDirectory(prefix="flare-ingest-") as workdir:
        try:
            for requested in args.backends:
                backend, note = resolve_backend(requested)
                if note:
                    notes.append(f"{requested}: {note}")
                redis_url = None
                if backend == "redis":
                    redis_server = RedisServer().start()
                    assert redis_server.process is not None
                    pin(redis_server.process.pid, LOAD_CPU)
                    redis_url = redis_server.url
                target = Target(backend, Path(workdir), redis_url)
                variants = [
                    v for v in VARIANTS if backend != "memory" or v != "raw ceiling"
                ]
                for round_index in range(args.rounds):
                    for variant in rotate(variants, round_index):
                        # Start each run with nothing left to write back, so
                        # no variant pays for the one before it.
                        target.discard()
                        os.sync()
                        rate = asyncio.run(run_variant(target, variant, args.entries))
                        raw.append(
                            {
                                "backend": requested,
                                "measured": backend,
                                "round": round_index,
                                "variant": variant,
                                "rate": rate,
                            }
                        )
                        done = f"round {round_index + 1} {variant}"
                        print(f"  {requested} {done}: {rate:,.0f}/s", flush=True)
                if redis_server is not None:
                    redis_server.stop()
                    redis_server = None
        finally:
            if redis_server is not None:
                redis_server.stop()
    summary = summarize(raw, args.backends)
    print_table(
        f"Ingest of {args.entries:,} buffered entries (medians of per-round ratios)",
        [
            "backend",
            "worker /s",
            "no grouping /s",
            "ceiling /s",
            "worker / ceiling",
            "grouping / no grouping",
        ],
        [
            (
                s["backend"],
                s["worker"],
                s["no grouping"],
                s.get("raw ceiling", "-"),
                s.get("worker_over_ceiling", "-"),
                s["grouping_over_no_grouping"],
            )
            for s in summary
        ],
    )
    for note in notes:
        print(f"NOTE: {note}")
    return {"notes": notes, "runs": raw, "summary": summary}


def summarize(raw: list[dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    summary = []
    for backend in backends:
        rows = [row for row in raw if row["backend"] == backend]
        rounds = sorted({row["round"] for row in rows})
        rate = {(row["round"], row["variant"]): row["rate"] for row in rows}
        item: dict[str, Any] = {"backend": backend, "measured": rows[0]["measured"]}
        for variant in VARIANTS:
            values = [rate[(r, variant)] for r in rounds if (r, variant) in rate]
            if values:
                item[variant] = median(values)
        item["grouping_over_no_grouping"] = median(
            rate[(r, "worker")] / rate[(r, "no grouping")] for r in rounds
        )
        if "raw ceiling" in item:
            item["worker_over_ceiling"] = median(
                rate[(r, "worker")] / rate[(r, "raw ceiling")] for r in rounds
            )
        summary.append(item)
    return summary
