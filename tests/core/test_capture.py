"""Capture rules: what each kind of failed request stores, and that the
client's response is exactly what the app sends without Flare."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import BackgroundTasks
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Message

from flare_core import Flare, FlareLogEntry

from .apps import build_app
from .helpers import serve, stored

# Status, headers without X-Request-ID, and body of one response.
Observed = tuple[int, list[tuple[str, str]], bytes]


async def _request(app: Any, method: str, url: str, **kwargs: Any) -> Observed:
    async with serve(app) as client:
        response = await client.request(method, url, **kwargs)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name != "x-request-id"
    ]
    return response.status_code, headers, response.content


async def _compare(method: str, url: str, **kwargs: Any) -> tuple[Observed, Flare]:
    """Send one request to the plain app and to the Flare app; return the latter."""
    plain_app, _ = build_app()
    flare_app, flare = build_app(capture_request_body=True)
    assert flare is not None
    expected = await _request(plain_app, method, url, **kwargs)
    actual = await _request(flare_app, method, url, **kwargs)
    assert actual == expected
    return actual, flare


async def _only_entry(flare: Flare) -> FlareLogEntry:
    entries = await stored(flare)
    assert len(entries) == 1, [entry.message for entry in entries]
    return entries[0]


async def test_http_exception_403_stored() -> None:
    (status, headers, _), flare = await _compare("GET", "/forbidden")
    entry = await _only_entry(flare)

    assert status == 403
    assert ("www-authenticate", "Bearer") in headers
    assert entry.event == "http_exception"
    assert entry.level == "WARNING"
    assert entry.http_status == 403
    assert entry.http_method == "GET"
    assert entry.endpoint == "/forbidden"
    assert entry.route == "/forbidden"
    assert entry.message == "no access to report 7"
    assert entry.error is not None
    assert "no access to report 7" in entry.error


async def test_http_exception_503_stored() -> None:
    (status, _, _), flare = await _compare("GET", "/upstream")
    entry = await _only_entry(flare)

    assert status == 503
    assert entry.level == "ERROR"
    assert entry.http_status == 503
    assert entry.message == "upstream down"


async def test_returned_json_404_stored() -> None:
    (status, _, _), flare = await _compare("GET", "/missing")
    entry = await _only_entry(flare)

    assert status == 404
    assert entry.event == "http_error_response"
    assert entry.level == "WARNING"
    assert entry.message == "report 9 not found"


async def test_unmatched_route_404_stored() -> None:
    (status, _, _), flare = await _compare("GET", "/no/such/page")
    entry = await _only_entry(flare)

    assert status == 404
    assert entry.http_status == 404
    assert entry.level == "WARNING"
    assert entry.endpoint == "/no/such/page"
    assert entry.route is None
    assert entry.message == "Not Found"


async def test_wrong_method_405_stored() -> None:
    (status, _, _), flare = await _compare("DELETE", "/ok")
    entry = await _only_entry(flare)

    assert status == 405
    assert entry.http_status == 405
    assert entry.level == "WARNING"
    assert entry.http_method == "DELETE"
    assert entry.message == "Method Not Allowed"


async def test_success_stores_nothing() -> None:
    (status, _, body), flare = await _compare("GET", "/ok")

    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert await stored(flare) == []


async def test_returned_5xx_stored() -> None:
    (status, _, body), flare = await _compare("GET", "/returns-502")
    entry = await _only_entry(flare)

    assert (status, body) == (502, b"gateway unhappy")
    assert entry.event == "http_error_response"
    assert entry.level == "ERROR"
    assert entry.message == "gateway unhappy"


async def test_validation_error_names_fields() -> None:
    (status, _, body), flare = await _compare("POST", "/orders", json={"qty": "many"})
    entry = await _only_entry(flare)

    assert status == 422
    assert [error["loc"] for error in json.loads(body)["detail"]] == [
        ["body", "qty"],
        ["body", "email"],
    ]
    assert entry.event == "validation_error"
    assert entry.level == "WARNING"
    assert "qty" in entry.message
    assert "email" in entry.message
    assert entry.error is not None
    assert "email" in entry.error
    assert entry.exception_type is not None
    assert entry.exception_type.endswith("RequestValidationError")
    errors = entry.context["validation_errors"]
    assert [error["loc"] for error in errors] == [["body", "qty"], ["body", "email"]]


async def test_unhandled_exception_full_record() -> None:
    (status, _, body), flare = await _compare("GET", "/crash")
    entry = await _only_entry(flare)

    assert (status, body) == (500, b"Internal Server Error")
    assert entry.event == "unhandled_exception"
    assert entry.level == "ERROR"
    assert entry.exception_type == "RuntimeError"
    assert entry.message == "could not load the report"
    assert entry.http_status == 500
    assert entry.http_method == "GET"
    assert entry.endpoint == "/crash"
    assert entry.ip_address == "127.0.0.1"
    assert entry.duration_ms is not None
    assert entry.duration_ms >= 0
    assert entry.stack_trace is not None
    assert "KeyError: 'missing'" in entry.stack_trace
    assert "direct cause of the following exception" in entry.stack_trace
    assert "in _chained_failure" in entry.stack_trace
    assert entry.stack_trace.rstrip().endswith(
        "RuntimeError: could not load the report"
    )


@pytest.mark.parametrize(
    ("path", "exception_type"),
    [
        ("/asgi-middleware-fails", "LookupError"),
        ("/http-middleware-fails", "ArithmeticError"),
    ],
)
async def test_user_middleware_exception_stored(path: str, exception_type: str) -> None:
    (status, _, _), flare = await _compare("GET", path)
    entry = await _only_entry(flare)

    assert status == 500
    assert entry.exception_type == exception_type
    assert entry.endpoint == path


async def test_mounted_app_route_has_prefix() -> None:
    (status, _, _), flare = await _compare("GET", "/sub/things/5")
    entry = await _only_entry(flare)

    assert status == 500
    assert entry.exception_type == "ValueError"
    assert entry.endpoint == "/sub/things/5"
    assert entry.route == "/sub/things/{thing_id}"


async def test_head_request_stored() -> None:
    (status, _, body), flare = await _compare("HEAD", "/upstream")
    entry = await _only_entry(flare)

    assert status == 503
    assert body == b""
    assert entry.message == "upstream down"
    assert entry.http_method == "HEAD"
    assert entry.http_status == status


async def test_streaming_response_unchanged() -> None:
    (status, _, body), flare = await _compare("GET", "/stream")

    assert status == 200
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert await stored(flare) == []


async def test_custom_exception_handler_json() -> None:
    def build(with_flare: bool) -> tuple[Any, Flare | None]:
        app, flare = build_app(storage_backend="memory") if with_flare else build_app()

        @app.exception_handler(Exception)
        async def on_error(request: Any, exc: Exception) -> Any:
            return JSONResponse({"oops": type(exc).__name__}, status_code=500)

        @app.get("/divide")
        async def divide() -> float:
            return 1 / 0

        return app, flare

    plain_app, _ = build(False)
    flare_app, flare = build(True)
    assert flare is not None
    expected = await _request(plain_app, "GET", "/divide")
    actual = await _request(flare_app, "GET", "/divide")
    entry = await _only_entry(flare)

    assert actual == expected
    assert json.loads(actual[2]) == {"oops": "ZeroDivisionError"}
    assert entry.exception_type == "ZeroDivisionError"
    assert entry.http_status == 500
    assert entry.endpoint == "/divide"
    assert entry.stack_trace is not None
    assert "in divide" in entry.stack_trace


async def test_request_id_generated_and_returned() -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None
    async with serve(app) as client:
        response = await client.get("/forbidden")
    entry = await _only_entry(flare)

    assert response.headers["x-request-id"]
    assert entry.request_id == response.headers["x-request-id"]


async def test_request_id_taken_from_request() -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None
    async with serve(app) as client:
        response = await client.get("/forbidden", headers={"X-Request-ID": "req-abc-1"})
    entry = await _only_entry(flare)

    assert response.headers["x-request-id"] == "req-abc-1"
    assert entry.request_id == "req-abc-1"


async def test_request_id_on_success_too() -> None:
    app, _ = build_app(storage_backend="memory")
    async with serve(app) as client:
        response = await client.get("/ok")

    assert response.headers["x-request-id"]


async def test_websocket_scope_passes_through() -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None
    messages: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    async with serve(app):
        await app(scope, receive, send)

    assert messages[0]["type"] == "websocket.close"
    assert await stored(flare) == []


async def test_status_codes_option_limits_capture() -> None:
    app, flare = build_app(storage_backend="memory", capture_status_codes="500-599")
    assert flare is not None
    async with serve(app) as client:
        await client.get("/forbidden")
        await client.get("/upstream")
    entries = await stored(flare)

    assert [entry.http_status for entry in entries] == [503]


async def test_request_id_header_disabled() -> None:
    app, flare = build_app(storage_backend="memory", request_id_header=None)
    assert flare is not None
    async with serve(app) as client:
        response = await client.get("/forbidden", headers={"X-Request-ID": "req-1"})
    entry = await _only_entry(flare)

    assert "x-request-id" not in response.headers
    assert entry.request_id is None


async def test_specific_handler_exception_kept() -> None:
    def build(with_flare: bool) -> tuple[Any, Flare | None]:
        app, flare = build_app(storage_backend="memory") if with_flare else build_app()

        @app.exception_handler(ValueError)
        def on_value_error(request: Any, exc: ValueError) -> Any:
            return JSONResponse({"invalid": str(exc)}, status_code=400)

        @app.get("/parse")
        async def parse() -> int:
            return int("seven")

        return app, flare

    plain_app, _ = build(False)
    flare_app, flare = build(True)
    assert flare is not None
    expected = await _request(plain_app, "GET", "/parse")
    actual = await _request(flare_app, "GET", "/parse")
    entry = await _only_entry(flare)

    assert actual == expected
    assert actual[0] == 400
    assert entry.event == "handled_exception"
    assert entry.level == "WARNING"
    assert entry.exception_type == "ValueError"
    assert entry.stack_trace is not None
    assert "in parse" in entry.stack_trace


async def test_stream_failing_midway_stored() -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None

    @app.get("/broken-stream")
    async def broken_stream() -> Any:
        async def chunks() -> Any:
            yield b"partial\n"
            raise ConnectionError("feed lost")

        return StreamingResponse(chunks())

    async with serve(app) as client:
        response = await client.get("/broken-stream")
    entry = await _only_entry(flare)

    assert response.status_code == 200
    assert entry.event == "unhandled_exception"
    assert entry.exception_type == "ConnectionError"
    assert entry.http_status == 200


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b"\xff\xfe" * 100, "application/octet-stream"),
        (b"<html><body>Oops</body></html>", "text/html"),
        (b"\xff\xfe not utf-8", "text/plain"),
    ],
)
async def test_non_text_error_body_ignored(body: bytes, media_type: str) -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None

    @app.get("/binary-error")
    async def binary_error() -> Any:
        return Response(body, status_code=500, media_type=media_type)

    async with serve(app) as client:
        response = await client.get("/binary-error")
    entry = await _only_entry(flare)

    assert response.content == body
    assert entry.message == "500 Internal Server Error"
    assert entry.error is None


async def test_background_failure_after_error_response() -> None:
    app, flare = build_app(storage_backend="memory")
    assert flare is not None

    def failing_job() -> None:
        raise KeyError("order 42 vanished")

    @app.get("/gone-with-cleanup")
    async def gone_with_cleanup(tasks: BackgroundTasks) -> JSONResponse:
        tasks.add_task(failing_job)
        return JSONResponse({"detail": "order 42 is gone"}, status_code=410)

    async with serve(app) as client:
        response = await client.get("/gone-with-cleanup")
    entries = await stored(flare)

    assert response.status_code == 410
    assert [entry.event for entry in entries] == [
        "http_error_response",
        "background_task_error",
    ]
    assert entries[0].message == "order 42 is gone"
    assert entries[1].exception_type == "KeyError"
    assert entries[1].http_status == 410
