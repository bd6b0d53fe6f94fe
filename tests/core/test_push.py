"""Manual entries from async code, ``def`` endpoints and plain threads."""

from __future__ import annotations

import logging
import threading

import pytest
from fastapi import FastAPI

from flare_core import (
    Flare,
    FlareConfig,
    FlareSetupError,
    push_log,
    push_log_sync,
    setup,
)

from .helpers import serve, stored


def _build() -> tuple[FastAPI, Flare]:
    app = FastAPI()
    config = FlareConfig(storage_backend="memory")

    @app.get("/async-push")
    async def async_push() -> str:
        await push_log(config, level="WARNING", event="quota", message="quota at 91%")
        return "pushed"

    @app.get("/push-other")
    async def push_other() -> str:
        await push_log(config, event="job", message="job failed", endpoint="/jobs/7")
        return "pushed"

    @app.get("/sync-push")
    def sync_push() -> str:
        push_log_sync(config, event="export", message="export failed", http_status=502)
        return "pushed"

    flare = setup(app, config, load_entry_points=False)
    return app, flare


async def test_push_log_from_async_endpoint() -> None:
    app, flare = _build()
    async with serve(app) as client:
        response = await client.get("/async-push")
    (entry,) = await stored(flare)

    assert response.json() == "pushed"
    assert (entry.level, entry.event, entry.message) == (
        "WARNING",
        "quota",
        "quota at 91%",
    )
    assert entry.fingerprint is not None
    assert entry.context == {}


async def test_push_log_sync_from_def_endpoint() -> None:
    app, flare = _build()
    async with serve(app) as client:
        response = await client.get("/sync-push")
    (entry,) = await stored(flare)

    assert response.json() == "pushed"
    assert (entry.level, entry.event, entry.message) == (
        "ERROR",
        "export",
        "export failed",
    )
    assert entry.http_status == 502


async def test_push_log_sync_from_thread() -> None:
    app, flare = _build()
    async with serve(app):
        threads = [
            threading.Thread(
                target=push_log_sync,
                args=(flare,),
                kwargs={"event": "thread", "message": f"thread {number}"},
            )
            for number in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    entries = await stored(flare)

    assert sorted(entry.message for entry in entries) == [
        f"thread {n}" for n in range(8)
    ]


async def test_push_log_with_exception() -> None:
    app, flare = _build()
    async with serve(app):
        try:
            int("seven")
        except ValueError as exc:
            await push_log(flare, event="import", message="row skipped", exc=exc)
    (entry,) = await stored(flare)

    assert entry.exception_type == "ValueError"
    assert entry.error == "ValueError: invalid literal for int() with base 10: 'seven'"
    assert entry.stack_trace is not None
    assert "in test_push_log_with_exception" in entry.stack_trace


def test_push_log_unattached_config() -> None:
    config = FlareConfig(storage_backend="memory")

    with pytest.raises(FlareSetupError, match="no app was set up"):
        push_log_sync(config, event="job", message="lost")


def test_push_log_before_start_buffers() -> None:
    _, flare = _build()
    push_log_sync(flare, event="early", message="before the worker started")

    assert len(flare.buffer) == 1


async def test_push_invalid_level_names_field() -> None:
    flare = Flare(FlareConfig(storage_backend="memory"), load_entry_points=False)

    with pytest.raises(ValueError, match="level"):
        await push_log(flare, level="INFO", event="job", message="m")  # type: ignore[arg-type]


async def test_push_context_keys_become_text() -> None:
    flare = Flare(FlareConfig(storage_backend="memory"), load_entry_points=False)
    entry = await push_log(flare, event="job", message="m", context={1: "one"})

    assert entry.context == {"1": "one"}


async def test_push_lone_surrogate_no_plugin_fault(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flare = Flare(FlareConfig(storage_backend="memory"), load_entry_points=False)
    with caplog.at_level(logging.ERROR):
        entry = await push_log(flare, event="job", message="bad \udcff name")

    assert entry.fingerprint is not None
    assert not [r for r in caplog.records if "failed in" in r.getMessage()]


@pytest.mark.parametrize("path", ["/async-push", "/sync-push"])
async def test_push_in_request_links_it(path: str) -> None:
    app, flare = _build()
    async with serve(app) as client:
        response = await client.get(path)
    (entry,) = await stored(flare)

    assert entry.request_id == response.headers["x-request-id"]
    assert entry.endpoint == path
    assert entry.route == path
    assert entry.http_method == "GET"


async def test_push_keeps_client_request_id() -> None:
    app, flare = _build()
    async with serve(app) as client:
        response = await client.get("/async-push", headers={"X-Request-ID": "req-42"})
    (entry,) = await stored(flare)

    assert response.headers["x-request-id"] == "req-42"
    assert entry.request_id == "req-42"


def test_push_outside_request_has_no_request() -> None:
    flare = Flare(FlareConfig(storage_backend="memory"), load_entry_points=False)
    entry = push_log_sync(flare, event="job", message="nightly job failed")

    assert entry.request_id is None
    assert entry.endpoint is None


async def test_push_naming_endpoint_keeps_it() -> None:
    app, flare = _build()
    async with serve(app) as client:
        response = await client.get("/push-other")
    (entry,) = await stored(flare)

    assert entry.endpoint == "/jobs/7"
    assert entry.http_method is None
    assert entry.request_id == response.headers["x-request-id"]
