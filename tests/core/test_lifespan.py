"""The worker runs inside the app's lifespan, whatever lifespan the app has."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from flare_core import Flare, MemoryStorage, setup

from .helpers import serve


def _storage(flare: Flare) -> MemoryStorage:
    assert isinstance(flare.storage, MemoryStorage)
    return flare.storage


def _add_failing_route(app: FastAPI) -> None:
    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("crashed")


def _setup(app: FastAPI) -> Flare:
    return setup(app, load_entry_points=False, storage_backend="memory")


async def test_user_lifespan_kept() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("user-start")
        yield
        events.append("user-stop")

    app = FastAPI(lifespan=lifespan)
    _add_failing_route(app)
    flare = _setup(app)
    async with serve(app) as client:
        worker_running = flare.worker.running
        await client.get("/crash")

    assert events == ["user-start", "user-stop"]
    assert worker_running is True
    assert [entry.message for entry in _storage(flare).entries] == ["crashed"]


async def test_user_lifespan_state_kept() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        yield {"greeting": "hello"}

    app = FastAPI(lifespan=lifespan)
    _setup(app)

    @app.get("/state")
    async def state(request: Request) -> str:
        return str(request.state.greeting)

    async with serve(app) as client:
        response = await client.get("/state")

    assert response.json() == "hello"


@pytest.mark.filterwarnings("ignore:\\s*on_event is deprecated:DeprecationWarning")
async def test_on_event_handlers_kept() -> None:
    events: list[str] = []
    app = FastAPI()

    @app.on_event("startup")
    async def startup() -> None:
        events.append("user-start")

    @app.on_event("shutdown")
    async def shutdown() -> None:
        events.append("user-stop")

    _add_failing_route(app)
    flare = _setup(app)
    async with serve(app) as client:
        worker_running = flare.worker.running
        await client.get("/crash")

    assert events == ["user-start", "user-stop"]
    assert worker_running is True
    assert [entry.message for entry in _storage(flare).entries] == ["crashed"]


def test_test_client_runs_worker() -> None:
    app = FastAPI()
    _add_failing_route(app)
    flare = _setup(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/crash")
        worker_running = flare.worker.running

    assert response.status_code == 500
    assert worker_running is True
    assert flare.worker.running is False
    assert [entry.message for entry in _storage(flare).entries] == ["crashed"]


async def test_setup_before_routes() -> None:
    app = FastAPI()
    flare = _setup(app)
    _add_failing_route(app)
    async with serve(app) as client:
        await client.get("/crash")

    assert [entry.message for entry in _storage(flare).entries] == ["crashed"]


async def test_setup_twice_one_worker(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    _add_failing_route(app)
    with caplog.at_level(logging.WARNING, logger="flare_core"):
        first = _setup(app)
        second = _setup(app)
    async with serve(app) as client:
        await client.get("/crash")
        workers = [t for t in asyncio.all_tasks() if t.get_name() == "flare-worker"]

    assert second is first
    assert len(workers) == 1
    assert [entry.message for entry in _storage(first).entries] == ["crashed"]
    assert "setup() was called again" in caplog.text
