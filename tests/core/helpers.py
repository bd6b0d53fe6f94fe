"""Helpers for core tests: run an app in process and read what Flare stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from flare_core import Flare, FlareLogEntry, MemoryStorage

BASE_URL = "http://testserver"


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield a client that talks to it in process.

    Exceptions that escape the app reach the client as the 500 the server
    error middleware sent, as they would through a real server.
    """
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


async def stored(flare: Flare) -> list[FlareLogEntry]:
    """Write everything buffered and return what the memory storage holds."""
    await flare.worker.flush()
    storage = flare.storage
    assert isinstance(storage, MemoryStorage), storage
    return list(storage.entries)
