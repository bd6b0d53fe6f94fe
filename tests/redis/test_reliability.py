"""Outages, restarts, many processes, cancellation and a small pool."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager

from flare_core import FlareConfig, FlareLogEntry, GroupQuery, LogQuery
from flare_core.pipeline import EntryBuffer, Worker
from flare_redis import RedisStorage
from tests.servers import RedisServer, UvicornServer, free_port

from .apps import build_app
from .conftest import make_entry

STREAM = "{flare}:logs"
FOREVER_HOURS = 24 * 365 * 100


@asynccontextmanager
async def running_app(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Run the test app in process with its lifespan; yield a client and the runtime."""
    app, flare = build_app(**options)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            yield client, flare


async def stored_request_ids(url: str) -> list[str]:
    """Return the request id of every entry in the stream, duplicates included."""
    client = aioredis.Redis.from_url(url)
    try:
        rows = await client.xrange(STREAM)
    finally:
        await client.aclose()
    return [json.loads(fields[b"e"])["request_id"] for _, fields in rows]


async def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met after {timeout} s")
        await asyncio.sleep(0.05)


async def send_failures(client: httpx.AsyncClient, ids: Sequence[str]) -> list[int]:
    responses = await asyncio.gather(
        *(client.get("/fail", headers={"X-Request-ID": rid}) for rid in ids)
    )
    return [response.status_code for response in responses]


async def test_unreachable_at_startup_buffers(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    ids = [f"startup-{i}" for i in range(60)]
    caplog.set_level(logging.WARNING)
    server = RedisServer(port=port)
    # Without storage_backend, a set redis_url picks the redis backend.
    options = {"redis_url": url, "buffer_size": 50, "storage_backend": None}
    try:
        async with running_app(**options) as (client, flare):
            statuses = await send_failures(client, ids)
            await asyncio.sleep(0.3)
            outage_warnings = [
                record.getMessage()
                for record in caplog.records
                if record.levelno == logging.WARNING
                and "failed to" in record.getMessage()
            ]
            buffered, dropped = len(flare.buffer), flare.buffer.dropped

            await asyncio.to_thread(server.start)

            async def all_written() -> bool:
                return len(await stored_request_ids(url)) >= 50

            await wait_until(all_written)
            stored = await stored_request_ids(url)
            stats = await flare.stats()
    finally:
        await asyncio.to_thread(server.stop)

    assert statuses == [503] * 60
    assert buffered == 50
    assert dropped == 10
    assert len(outage_warnings) == 1
    assert "failed to start" in outage_warnings[0]
    assert sorted(stored) == sorted(ids[10:])
    assert stats.dropped == 10


async def test_restart_under_load() -> None:
    port = free_port()
    server = RedisServer(
        port=port, extra_args=["--appendonly", "yes", "--appendfsync", "always"]
    )
    await asyncio.to_thread(server.start)
    url = server.url
    try:
        async with running_app(redis_url=url, buffer_size=100) as (client, flare):
            before = [f"before-{i}" for i in range(40)]
            during = [f"during-{i}" for i in range(150)]
            statuses = await send_failures(client, before)
            await wait_until(lambda: _count_at_least(url, 40))

            await asyncio.to_thread(server.stop)
            statuses += await send_failures(client, during)
            ok = await client.get("/ok")
            await asyncio.to_thread(server.start)

            await wait_until(lambda: _count_at_least(url, 140))
            stored = await stored_request_ids(url)
            stats = await flare.stats()
            dropped = flare.buffer.dropped
    finally:
        await asyncio.to_thread(server.stop)

    assert statuses == [503] * 190
    assert ok.status_code == 200
    assert len(stored) == len(set(stored))
    assert set(before) <= set(stored)
    assert len(stored) + dropped == 190
    assert dropped == 50
    assert stats.dropped == dropped


async def _count_at_least(url: str, count: int) -> bool:
    try:
        return len(await stored_request_ids(url)) >= count
    except (OSError, aioredis.ConnectionError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
async def test_processes_write_once(
    redis_url: str, uvicorn_server: Callable[..., UvicornServer], workers: int
) -> None:
    env = {"FLARE_REDIS_URL": redis_url, "FLARE_WORKER_INTERVAL_SECONDS": "0.1"}
    server = uvicorn_server("tests.redis.apps:app", env=env, workers=workers)
    ids = [f"proc-{i}" for i in range(400)]
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
        statuses = await send_failures(client, ids)
    code = await asyncio.to_thread(server.stop)
    stored = await stored_request_ids(redis_url)
    assert code == 0
    assert statuses == [503] * 400
    assert len(stored) == 400
    assert set(stored) == set(ids)


def _big_batch(count: int) -> list[FlareLogEntry]:
    trace = "x" * 100_000
    return [make_entry(i, message=f"big-{i}", stack_trace=trace) for i in range(count)]


async def test_cancelled_write_keeps_entries(
    make_storage: Callable[..., Any], raw: aioredis.Redis
) -> None:
    # With one pooled connection, the next command reuses the cancelled one.
    storage: RedisStorage = await make_storage(redis_max_connections=1)
    batch = _big_batch(200)
    await raw.set("marker", "expected")
    task = asyncio.create_task(storage.write_batch(batch))
    await asyncio.sleep(0.02)
    task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    written_then = await raw.xlen(STREAM)
    queued_then = await raw.llen("{flare}:queue")

    marker = await storage.client.get("marker")
    await storage.write_batch(batch)
    assert isinstance(outcome, asyncio.CancelledError)
    assert queued_then == 0
    assert written_then in (0, 200)
    assert marker == b"expected"
    assert await raw.xlen(STREAM) == 200


async def test_worker_cancelled_at_shutdown(
    redis_url: str, raw: aioredis.Redis
) -> None:
    storage = RedisStorage(FlareConfig(redis_url=redis_url))
    buffer = EntryBuffer(1000, 100)
    worker = Worker(
        buffer,
        storage,
        interval=0.05,
        batch_size=100,
        max_entries=10_000,
        retention=timedelta(hours=FOREVER_HOURS),
    )
    for entry in _big_batch(300):
        buffer.put(entry)
    worker.start()
    await wait_until(lambda: _xlen_at_least(raw, 1), timeout=10)
    await worker.stop(timeout=0)
    queued = await raw.llen("{flare}:queue")
    marker = await storage.client.ping()
    await worker.flush()
    await storage.close()
    messages = [
        json.loads(fields[b"e"])["message"] for _, fields in await raw.xrange(STREAM)
    ]
    assert queued == 0
    assert marker is True
    assert len(messages) == 300
    assert len(set(messages)) == 300


async def _xlen_at_least(raw: aioredis.Redis, count: int) -> bool:
    return int(await raw.xlen(STREAM)) >= count


async def test_cancel_after_send_single_connection(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, single_connection_client=True)
    payload = b"p" * 500_000
    rng = random.Random(7)
    cancelled = 0
    try:
        await client.set("key", "value")
        for round_number in range(200):
            # A large ECHO is cancelled while being sent, or while its reply
            # is on the way, or after it completed.
            task = asyncio.create_task(client.echo(payload))
            for _ in range(rng.randint(0, 4)):
                await asyncio.sleep(0)
            task.cancel()
            outcome = (await asyncio.gather(task, return_exceptions=True))[0]
            cancelled += isinstance(outcome, asyncio.CancelledError)
            assert await client.get("key") == b"value"
            assert await client.incr("rounds") == round_number + 1
    finally:
        await client.aclose()
    assert cancelled > 0


async def test_small_pool_many_readers(make_storage: Callable[..., Any]) -> None:
    storage: RedisStorage = await make_storage(redis_max_connections=5)
    await storage.write_batch(
        [make_entry(i, fingerprint=f"g{i % 5}") for i in range(50)]
    )
    stop = asyncio.Event()

    async def ingest() -> int:
        written = 0
        while not stop.is_set():
            await storage.write_batch(
                [make_entry(0, fingerprint="g0") for _ in range(20)]
            )
            written += 20
        return written

    async def read(reader: int) -> int:
        pages = 0
        for _ in range(10):
            await storage.query(LogQuery(limit=20, level="ERROR"))
            await storage.stats()
            await storage.query_groups(GroupQuery())
            await storage.group_sparklines([f"g{reader % 5}"])
            pages += 1
        return pages

    writer = asyncio.create_task(ingest())
    results = await asyncio.gather(
        *(read(reader) for reader in range(50)), return_exceptions=True
    )
    stop.set()
    written = await writer
    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []
    assert written > 0
