"""An app for the end-to-end capture tests, run by uvicorn in a subprocess.

Flare stores entries in memory, so the app itself serves them at
``/_test/entries`` after writing out its buffer. Test variables:

- ``FLARE_TEST_ENTRY_POINTS=1`` loads the installed ``flare`` entry points.
- ``FLARE_TEST_SINK_FILE`` names a file that receives every stored message.
- ``FLARE_TEST_STALLED_STORAGE=1`` delays every write until a POST to
  ``/_test/release-storage``.

Other FLARE_* variables configure Flare as usual.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse

from flare_core import FlareLogEntry, MemoryStorage, hookimpl, setup


class FileSink:
    """Append the message of every stored entry to a file, one per line.

    The file outlives the server process, so a test can check what the
    worker wrote during shutdown.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def flare_entries_stored(self, entries: Sequence[FlareLogEntry]) -> None:
        with open(self.path, "a", encoding="utf-8") as sink:
            sink.writelines(f"{entry.message}\n" for entry in entries)


class StalledStorage(MemoryStorage):
    """Memory storage whose writes wait until ``/_test/release-storage``."""

    name = "stalled"

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()

    async def write_batch(self, entries: Sequence[FlareLogEntry]) -> None:
        await self.released.wait()
        await super().write_batch(entries)

    @hookimpl
    def flare_storage(self, backend: str) -> MemoryStorage | None:
        return self if backend == self.name else None


sink_path = os.environ.get("FLARE_TEST_SINK_FILE")
stalled = os.environ.get("FLARE_TEST_STALLED_STORAGE") == "1"
plugins: list[Any] = [FileSink(sink_path)] if sink_path else []
if stalled:
    plugins.append(StalledStorage())
app = FastAPI()
flare = setup(
    app,
    storage_backend="stalled" if stalled else "memory",
    load_entry_points=os.environ.get("FLARE_TEST_ENTRY_POINTS") == "1",
    plugins=plugins,
)
stream_released = asyncio.Event()


def _load_order(order_id: int) -> None:
    orders: dict[int, str] = {}
    orders[order_id + 1] = "other"
    raise KeyError(f"order {order_id} vanished")


def failing_job(order_id: int) -> None:
    _load_order(order_id)


async def slow_job() -> None:
    await asyncio.sleep(3)


@app.get("/crash")
async def crash() -> None:
    try:
        int("x")
    except ValueError as exc:
        raise RuntimeError("crash after a bad number") from exc


@app.get("/fail/{number}")
async def fail(number: int) -> None:
    raise RuntimeError(f"failure {number}")


@app.get("/missing/{number}")
async def missing(number: int) -> dict[str, Any]:
    from fastapi import HTTPException

    raise HTTPException(404, detail=f"thing {number} not found")


@app.post("/orders/{order_id}/confirm")
async def confirm(order_id: int, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(failing_job, order_id)
    return {"status": "confirmed"}


@app.post("/slow-background")
async def slow_background(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(slow_job)
    return {"status": "queued"}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        # The rest comes only after the client asked for it, so a client
        # that waits for the whole body before reading would hang.
        await asyncio.wait_for(stream_released.wait(), timeout=10)
        yield b"second\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/stream/release")
async def release_stream() -> dict[str, bool]:
    stream_released.set()
    return {"released": True}


@app.get("/_test/entries")
async def entries() -> list[dict[str, Any]]:
    await flare.worker.flush()
    storage = flare.storage
    assert isinstance(storage, MemoryStorage)
    return [entry.model_dump(mode="json") for entry in storage.entries]


@app.post("/_test/release-storage")
async def release_storage() -> dict[str, bool]:
    storage = flare.storage
    assert isinstance(storage, StalledStorage)
    storage.released.set()
    return {"released": True}


@app.get("/_test/health")
async def health() -> dict[str, Any]:
    return flare.health()
