"""The request body: Flare keeps a bounded copy of what the app reads and
never reads, consumes or holds back the body itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response, UploadFile
from starlette.types import Message

from flare_core import Flare, setup

from .helpers import serve, stored

BODY = {"user": "u1", "items": list(range(50))}


def _build(
    *, middleware: bool, capture: bool, max_body_bytes: int = 8192
) -> tuple[FastAPI, Flare]:
    app = FastAPI()

    if middleware:

        @app.middleware("http")
        async def read_body_first(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            body = await request.body()
            response = await call_next(request)
            response.headers["x-middleware-saw"] = str(len(body))
            return response

    @app.post("/echo-length")
    async def echo_length(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.post("/stream-length")
    async def stream_length(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"length": size}

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"length": len(await file.read())}

    @app.post("/json-then-fail")
    async def json_then_fail(request: Request) -> None:
        payload = await request.json()
        raise RuntimeError(f"could not handle {len(payload)} keys")

    @app.post("/ignore-body-fail")
    async def ignore_body_fail() -> None:
        raise RuntimeError("failed without reading the body")

    flare = setup(
        app,
        load_entry_points=False,
        storage_backend="memory",
        capture_request_body=capture,
        max_body_bytes=max_body_bytes,
    )
    return app, flare


CASES = [
    pytest.param(middleware, capture, id=f"middleware={middleware}-capture={capture}")
    for middleware in (False, True)
    for capture in (False, True)
]


@pytest.mark.parametrize(("middleware", "capture"), CASES)
async def test_body_reads_unchanged(middleware: bool, capture: bool) -> None:
    app, _ = _build(middleware=middleware, capture=capture)
    payload = b"x" * 100_000
    async with serve(app) as client, asyncio.timeout(10):
        whole = await client.post("/echo-length", content=payload)
        streamed = await client.post("/stream-length", content=payload)
        uploaded = await client.post("/upload", files={"file": ("a.bin", payload)})

    assert whole.json() == {"length": len(payload)}
    assert streamed.json() == {"length": len(payload)}
    assert uploaded.json() == {"length": len(payload)}


@pytest.mark.parametrize(("middleware", "capture"), CASES)
async def test_failing_json_endpoint_entry(middleware: bool, capture: bool) -> None:
    app, flare = _build(middleware=middleware, capture=capture)
    async with serve(app) as client, asyncio.timeout(10):
        response = await client.post("/json-then-fail", json=BODY)
    entries = await stored(flare)

    assert response.status_code == 500
    assert len(entries) == 1
    request = entries[0].context["request"]
    if capture:
        assert json.loads(request["body"]) == BODY
    else:
        assert "body" not in request


async def test_body_scrubbed_in_entry() -> None:
    app, flare = _build(middleware=False, capture=True)
    async with serve(app) as client:
        await client.post("/json-then-fail", json={"user": "u1", "password": "hunter2"})
    (entry,) = await stored(flare)

    assert json.loads(entry.context["request"]["body"]) == {
        "user": "u1",
        "password": "[Filtered]",
    }


async def test_body_truncated_at_limit() -> None:
    app, flare = _build(middleware=False, capture=True, max_body_bytes=100)
    async with serve(app) as client:
        await client.post("/json-then-fail", json={"text": "a" * 5000})
    (entry,) = await stored(flare)
    request = entry.context["request"]

    assert len(request["body"]) == 100
    assert request["body"].startswith('{"text":"aaa')
    assert request["body_truncated"] is True


async def test_large_upload_copy_bounded() -> None:
    app, flare = _build(middleware=False, capture=True, max_body_bytes=4096)
    payload = b"\x00" * (10 * 1024 * 1024)

    @app.post("/upload-then-fail")
    async def upload_then_fail(file: UploadFile) -> None:
        data = await file.read()
        raise RuntimeError(f"rejected {len(data)} bytes")

    async with serve(app) as client, asyncio.timeout(30):
        response = await client.post(
            "/upload-then-fail", files={"file": ("a.bin", payload)}
        )
    (entry,) = await stored(flare)
    request = entry.context["request"]

    assert response.status_code == 500
    assert entry.message == f"rejected {len(payload)} bytes"
    assert request["body"].startswith("<4096 bytes of multipart/form-data")
    assert request["body_truncated"] is True


async def _call_counting_receive(app: FastAPI, path: str, body: bytes) -> int:
    """Call ``app`` directly and count how often anything calls ``receive``."""
    calls = 0
    messages: list[Message] = []

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    async with serve(app), asyncio.timeout(10):
        # The failing endpoints re-raise after the 500, as a server would see.
        with contextlib.suppress(RuntimeError):
            await app(scope, receive, send)
    assert messages[0]["status"] == 500
    return calls


@pytest.mark.parametrize("capture", [False, True])
async def test_receive_untouched_when_unread(capture: bool) -> None:
    app, flare = _build(middleware=False, capture=capture)
    calls = await _call_counting_receive(app, "/ignore-body-fail", b'{"a": 1}')
    entries = await stored(flare)

    assert calls == 0
    assert len(entries) == 1
    assert "body" not in entries[0].context["request"]


async def test_receive_called_once_by_app() -> None:
    app, flare = _build(middleware=False, capture=True)
    calls = await _call_counting_receive(app, "/json-then-fail", b'{"a": 1}')
    (entry,) = await stored(flare)

    assert calls == 1
    assert entry.context["request"]["body"] == '{"a": 1}'
