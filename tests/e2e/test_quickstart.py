"""The README's promise: the demo app on uvicorn fills a SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from flare_core import FlareConfig, FlareLogEntry, LogQuery
from flare_sqlite.plugin import flare_storage
from tests.servers import UvicornServer

ROOT = Path(__file__).resolve().parents[2]


async def _stored(path: Path) -> list[FlareLogEntry]:
    storage = flare_storage(config=FlareConfig(sqlite_path=str(path)), backend="sqlite")
    await storage.start()
    try:
        page = await storage.query(LogQuery(limit=100))
    finally:
        await storage.close()
    return page.items


def _wait_for(path: Path, count: int, timeout: float = 15.0) -> list[FlareLogEntry]:
    deadline = time.monotonic() + timeout
    entries: list[FlareLogEntry] = []
    while time.monotonic() < deadline:
        if path.exists():
            entries = asyncio.run(_stored(path))
            if len(entries) >= count:
                return entries
        time.sleep(0.3)
    return entries


def _demo_client(
    uvicorn_server: Callable[..., UvicornServer], database: Path
) -> httpx.Client:
    """Start the demo app on SQLite at ``database`` and return a client for it.

    Each request uses its own connection, because uvicorn closes one after
    an exception escapes the app.
    """
    server = uvicorn_server(
        "examples.example:app",
        cwd=ROOT,
        env={"FLARE_SQLITE_PATH": str(database), "PYTHONPATH": str(ROOT)},
    )
    return httpx.Client(
        base_url=server.url, timeout=10, headers={"Connection": "close"}
    )


def test_demo_app_stores_errors(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    database = tmp_path / "flare.db"
    with _demo_client(uvicorn_server, database) as client:
        assert client.get("/").status_code == 200
        assert client.get("/boom").status_code == 500
        assert client.get("/items/999").status_code == 404

    entries = {entry.event: entry for entry in _wait_for(database, 2)}

    error = entries["unhandled_exception"]
    assert error.level == "ERROR"
    assert error.exception_type == "RuntimeError"
    assert error.http_status == 500
    assert error.http_method == "GET"
    assert error.endpoint == "/boom"
    assert error.ip_address == "127.0.0.1"
    assert error.duration_ms is not None
    assert error.stack_trace is not None
    assert (
        'in boom\n    raise RuntimeError("Something exploded in /boom")'
        in error.stack_trace
    )

    warning = entries["http_exception"]
    assert warning.level == "WARNING"
    assert warning.http_status == 404
    assert warning.message == "Item 999 not found"
    assert warning.route == "/items/{item_id}"


def test_demo_app_other_routes(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    database = tmp_path / "flare.db"
    with _demo_client(uvicorn_server, database) as client:
        assert client.post("/orders", json={"qty": "many"}).status_code == 422
        assert client.get("/sync-fail").status_code == 500
        assert client.post("/payments/pay_42/decline").json() == {"logged": True}

    events = {entry.event: entry for entry in _wait_for(database, 3)}

    assert "email" in events["validation_error"].message
    assert "qty" in events["validation_error"].message
    assert events["unhandled_exception"].exception_type == "KeyError"
    assert events["payment_declined"].context["payment_id"] == "pay_42"
    assert events["payment_declined"].level == "WARNING"
