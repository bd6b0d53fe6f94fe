"""The buffer and the worker: overflow, wake-up, storage outages, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI

from flare_core import (
    Flare,
    FlareLogEntry,
    MemoryStorage,
    StorageUnavailable,
    hookimpl,
    push_log,
    setup,
)
from flare_core.pipeline import EntryBuffer

from .helpers import serve


class StalledStorage(MemoryStorage):
    """Memory storage whose writes wait until ``release`` is set."""

    name = "stalled"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.calls = 0

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        self.calls += 1
        await self.release.wait()
        await super().write_batch(entries)


class FlakyStorage(MemoryStorage):
    """Memory storage whose first ``failures`` writes raise ``StorageUnavailable``."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise StorageUnavailable("connection refused", backend="flaky")
        await super().write_batch(entries)


class StoragePlugin:
    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    @hookimpl
    def flare_storage(self, backend: str) -> MemoryStorage | None:
        return self.storage if backend == self.storage.name else None


def _build(storage: MemoryStorage, **options: Any) -> tuple[FastAPI, Flare]:
    app = FastAPI()

    @app.get("/fail/{number}")
    async def fail(number: int) -> None:
        raise RuntimeError(f"failure {number}")

    flare = setup(
        app,
        load_entry_points=False,
        storage_backend=storage.name,
        plugins=[StoragePlugin(storage)],
        **options,
    )
    return app, flare


async def _until(condition: Any, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` to hold; the timeout only guards against a hang."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_overflow_drops_oldest_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = StalledStorage()
    app, flare = _build(storage, buffer_size=20, worker_batch_size=5)
    lengths = []
    with caplog.at_level(logging.WARNING, logger="flare_core.pipeline"):
        async with serve(app) as client:
            for number in range(5):
                await client.get(f"/fail/{number}")
            await _until(lambda: storage.calls == 1)
            async with asyncio.timeout(30):
                for number in range(5, 100):
                    response = await client.get(f"/fail/{number}")
                    assert response.status_code == 500
                    lengths.append(len(flare.buffer))
            dropped = flare.buffer.dropped
            storage.release.set()
            await _until(lambda: len(flare.buffer) == 0)
    messages = [entry.message for entry in storage.entries]
    drop_logs = [r for r in caplog.records if "buffer is full" in r.getMessage()]

    assert max(lengths) == 20
    assert dropped == 75
    assert len(drop_logs) == 1
    assert (await flare.stats()).dropped == 75
    assert messages == [f"failure {n}" for n in [*range(5), *range(80, 100)]]


async def test_worker_wakes_on_full_batch() -> None:
    storage = MemoryStorage()
    app, flare = _build(storage, worker_interval_seconds=3600, worker_batch_size=3)
    async with serve(app):
        await _until(lambda: flare.worker.storage_ready)
        for number in range(3):
            await push_log(flare, event="job", message=f"job {number}")
        await _until(lambda: len(storage.entries) == 3)

        assert len(flare.buffer) == 0


async def test_worker_waits_below_batch_size() -> None:
    storage = MemoryStorage()
    app, flare = _build(storage, worker_interval_seconds=3600, worker_batch_size=3)
    async with serve(app):
        await _until(lambda: flare.worker.storage_ready)
        for number in range(2):
            await push_log(flare, event="job", message=f"job {number}")
        await asyncio.sleep(0.2)

        assert storage.entries == []
        assert len(flare.buffer) == 2


async def test_shutdown_flushes_buffer() -> None:
    storage = MemoryStorage()
    app, flare = _build(storage, worker_interval_seconds=3600)
    async with serve(app) as client:
        for number in range(7):
            await client.get(f"/fail/{number}")
        assert storage.entries == []

    assert [entry.message for entry in storage.entries] == [
        f"failure {n}" for n in range(7)
    ]
    assert flare.worker.running is False


async def test_storage_outage_retried_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = FlakyStorage(failures=2)
    app, flare = _build(storage, worker_interval_seconds=0.05)
    with caplog.at_level(logging.INFO, logger="flare_core.pipeline"):
        async with serve(app) as client:
            await client.get("/fail/1")
            await _until(lambda: storage.attempts >= 1)
            await client.get("/fail/2")
            await _until(lambda: len(storage.entries) == 2)
            running = flare.worker.running
    failed = [r for r in caplog.records if "failed to write" in r.getMessage()]
    recovered = [r for r in caplog.records if "recovered" in r.getMessage()]

    assert running is True
    assert storage.attempts == 3
    assert [entry.message for entry in storage.entries] == ["failure 1", "failure 2"]
    assert len(failed) == 1
    assert failed[0].levelno == logging.WARNING
    assert "connection refused" in failed[0].getMessage()
    assert len(recovered) == 1


async def test_storage_error_keeps_entries_on_shutdown() -> None:
    storage = FlakyStorage(failures=1)
    app, flare = _build(storage, worker_interval_seconds=3600)
    async with serve(app):
        await push_log(flare, event="job", message="job 1")
        assert await flare.worker.flush() is False
        assert len(flare.buffer) == 1

    assert [entry.message for entry in storage.entries] == ["job 1"]


async def test_stalled_storage_shutdown_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = StalledStorage()
    app, flare = _build(storage, worker_batch_size=1, flush_timeout_seconds=0.2)
    with caplog.at_level(logging.WARNING, logger="flare_core.pipeline"):
        async with asyncio.timeout(10), serve(app) as client:
            await client.get("/fail/1")
            await _until(lambda: storage.calls == 1)
            await client.get("/fail/2")

    assert storage.entries == []
    assert flare.worker.running is False
    assert "shut down with 2 entries unwritten" in caplog.text


class FailingStartStorage(MemoryStorage):
    """Memory storage whose first ``start`` raises, as an unreachable server would."""

    name = "failing-start"

    def __init__(self) -> None:
        super().__init__()
        self.start_attempts = 0

    async def start(self) -> None:
        self.start_attempts += 1
        if self.start_attempts == 1:
            raise StorageUnavailable("no route to host", backend=self.name)
        await super().start()


async def test_storage_start_retried(caplog: pytest.LogCaptureFixture) -> None:
    storage = FailingStartStorage()
    app, _ = _build(storage, worker_interval_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="flare_core.pipeline"):
        async with serve(app) as client:
            response = await client.get("/fail/1")
            await _until(lambda: len(storage.entries) == 1)
    failed = [r for r in caplog.records if "failed to start" in r.getMessage()]

    assert response.status_code == 500
    assert storage.start_attempts == 2
    assert len(failed) == 1
    assert "no route to host" in failed[0].getMessage()


def test_backoff_doubles_up_to_cap() -> None:
    _, flare = _build(MemoryStorage())
    delays = []
    for failures in range(1, 10):
        flare.worker._failures = failures
        delays.append(flare.worker._backoff())

    assert delays[:3] == [1.0, 2.0, 4.0]
    assert max(delays) == 5.0


async def test_outage_overflow_keeps_newest() -> None:
    storage = FlakyStorage(failures=1)
    app, flare = _build(
        storage, buffer_size=4, worker_batch_size=3, worker_interval_seconds=3600
    )
    async with serve(app):
        await _until(lambda: flare.worker.storage_ready)
        for number in range(3):
            await push_log(flare, event="job", message=f"job {number}")
        await _until(lambda: storage.attempts == 1)
        for number in range(3, 6):
            await push_log(flare, event="job", message=f"job {number}")
        await _until(lambda: len(storage.entries) == 4)
        buffered = len(flare.buffer)

    assert buffered == 0
    assert flare.buffer.dropped == 2
    assert [entry.message for entry in storage.entries] == [
        f"job {n}" for n in range(2, 6)
    ]


def test_restore_over_cap_drops_oldest() -> None:
    buffer = EntryBuffer(maxsize=4, batch_size=10)
    for number in range(3):
        buffer.put(FlareLogEntry(message=f"job {number}"))
    failed_batch = buffer.take(3)
    for number in range(3, 6):
        buffer.put(FlareLogEntry(message=f"job {number}"))
    buffer.restore(failed_batch)

    assert [entry.message for entry in buffer.take(10)] == [
        f"job {n}" for n in range(2, 6)
    ]
    assert buffer.dropped == 2


async def test_storage_down_at_shutdown_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = FlakyStorage(failures=1000)
    app, flare = _build(storage, worker_interval_seconds=3600)
    with caplog.at_level(logging.WARNING, logger="flare_core.pipeline"):
        async with serve(app):
            await push_log(flare, event="job", message="job 1")

    assert storage.entries == []
    assert "shut down with 1 entries unwritten" in caplog.text
    assert "connection refused" in caplog.text


class PickyStorage(MemoryStorage):
    """Memory storage that can never write an entry whose message is "poison"."""

    name = "picky"

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        self.attempts += 1
        if any(entry.message == "poison" for entry in entries):
            raise ValueError("cannot encode this entry")
        await super().write_batch(entries)


async def test_rejected_entry_does_not_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = PickyStorage()
    app, flare = _build(storage, worker_interval_seconds=3600, worker_batch_size=10)
    with caplog.at_level(logging.WARNING, logger="flare_core.pipeline"):
        async with serve(app):
            await _until(lambda: flare.worker.storage_ready)
            for message in ["first", "poison", "second"]:
                await push_log(flare, event="job", message=message)
            assert await flare.worker.flush() is True
            await push_log(flare, event="job", message="third")
            assert await flare.worker.flush() is True
    rejected = [r for r in caplog.records if "rejected entry" in r.getMessage()]

    assert [entry.message for entry in storage.entries] == ["first", "second", "third"]
    assert flare.worker.rejected == 1
    assert flare.health()["rejected"] == 1
    assert len(rejected) == 1
    assert "cannot encode this entry" in rejected[0].getMessage()


class BrokenStorage(FlakyStorage):
    """Memory storage whose first ``failures`` writes raise a plain ``OSError``."""

    name = "broken"

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError("disk I/O error")
        await MemoryStorage.write_batch(self, entries)


async def test_outage_keeps_whole_batch() -> None:
    storage = BrokenStorage(failures=3)
    app, flare = _build(storage, worker_interval_seconds=3600, worker_batch_size=10)
    async with serve(app):
        await _until(lambda: flare.worker.storage_ready)
        for number in range(4):
            await push_log(flare, event="job", message=f"job {number}")
        assert await flare.worker.flush() is False
        kept = len(flare.buffer)
        assert await flare.worker.flush() is True

    assert kept == 4
    assert storage.attempts == 4
    assert flare.worker.rejected == 0
    assert [entry.message for entry in storage.entries] == [
        f"job {n}" for n in range(4)
    ]
