"""Request facts in an entry: client IP behind proxies and raw bytes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from starlette.types import Message

from flare_core import Flare, FlareLogEntry, MemoryStorage, push_log, setup

from .helpers import serve, stored

FORGED = {"X-Forwarded-For": "203.0.113.9, 192.0.2.50", "X-Real-IP": "198.51.100.7"}


def _build(**options: Any) -> tuple[FastAPI, Flare]:
    app = FastAPI()

    @app.get("/denied")
    async def denied() -> None:
        raise HTTPException(403, detail="denied")

    flare = setup(app, load_entry_points=False, storage_backend="memory", **options)
    return app, flare


async def _ip_of_denied(
    app: FastAPI, flare: Flare, headers: dict[str, str]
) -> str | None:
    async with serve(app) as client:
        await client.get("/denied", headers=headers)
    (entry,) = await stored(flare)
    return entry.ip_address


async def test_ip_is_peer_without_proxies() -> None:
    app, flare = _build()

    assert await _ip_of_denied(app, flare, FORGED) == "127.0.0.1"


async def test_ip_is_peer_when_peer_untrusted() -> None:
    app, flare = _build(trusted_proxies=["10.0.0.0/8"])

    assert await _ip_of_denied(app, flare, FORGED) == "127.0.0.1"


async def test_ip_rightmost_untrusted_hop() -> None:
    app, flare = _build(trusted_proxies=["127.0.0.1"])

    assert await _ip_of_denied(app, flare, FORGED) == "192.0.2.50"


async def test_ip_skips_trusted_hops() -> None:
    app, flare = _build(trusted_proxies=["127.0.0.1", "192.0.2.0/24"])

    assert await _ip_of_denied(app, flare, FORGED) == "203.0.113.9"


async def test_trusted_proxies_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    app, flare = _build()

    assert flare.config.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    assert await _ip_of_denied(app, flare, FORGED) == "192.0.2.50"


async def test_ip_ignores_hop_that_is_no_address() -> None:
    app, flare = _build(trusted_proxies=["127.0.0.1"])
    headers = {"X-Forwarded-For": "203.0.113.9, not-an-ip"}

    assert await _ip_of_denied(app, flare, headers) == "127.0.0.1"


def _raw_scope(
    path: str, raw_path: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"q=\xff\xfe",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }


async def _call(app: FastAPI, scope: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    async with serve(app):
        await app(scope, receive, send)
    return messages


async def test_non_utf8_path_and_headers_stored() -> None:
    app, flare = _build()
    scope = _raw_scope(
        "/caf\udce9/\ud800",
        b"/caf\xe9/%ED%A0%80",
        [(b"host", b"testserver"), (b"x-note", b"caf\xe9 \xff"), (b"x-\xe9", b"v")],
    )
    messages = await _call(app, scope)
    (entry,) = await stored(flare)
    storage = flare.storage
    assert isinstance(storage, MemoryStorage)

    assert messages[0]["status"] == 404
    assert entry.endpoint is not None
    assert entry.endpoint.startswith("/caf")
    assert entry.context["request"]["headers"]["x-note"] == "caf\xe9 \xff"
    assert "x-\xe9" in entry.context["request"]["headers"]
    # Storable: the entry survives a JSON round trip, as every backend needs.
    dumped = entry.model_dump_json()
    assert FlareLogEntry.model_validate_json(dumped).endpoint == entry.endpoint


async def test_surrogates_in_exception_storable() -> None:
    app, flare = _build()
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")

    @app.get("/open-file")
    async def open_file() -> None:
        raise FileNotFoundError(f"no such file: {name}")

    async with serve(app) as client:
        await client.get("/open-file")
    await push_log(
        flare, event="import", message=f"skipped {name}", context={name: name}
    )
    (captured, pushed) = await stored(flare)

    assert "\\udce9" in captured.message
    assert captured.stack_trace is not None
    assert "\\udce9" in captured.stack_trace
    assert pushed.context == {"caf\\udce9.txt": "caf\\udce9.txt"}
    for entry in (captured, pushed):
        dumped = entry.model_dump_json()
        assert FlareLogEntry.model_validate_json(dumped) == entry
