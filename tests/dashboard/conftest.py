"""Fixtures for the dashboard tests: apps on each storage backend, and Chromium."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flare_core import Flare, FlareLogEntry, setup

LOOPBACK_CLIENT = ("127.0.0.1", 50000)


def _backend_available(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


# A backend whose distribution is not installed is left out.
BACKENDS = ["memory"]
if _backend_available("flare_sqlite", "SQLiteStorage"):
    BACKENDS.append("sqlite")
if _backend_available("flare_redis", "RedisStorage"):
    BACKENDS.append("redis")


@dataclass
class Dashboard:
    """An app set up with Flare, its runtime and a started TestClient."""

    app: FastAPI
    flare: Flare
    client: TestClient

    def write(self, entries: Sequence[FlareLogEntry]) -> list[FlareLogEntry]:
        """Write entries straight to the storage, in the app's event loop."""
        portal = self.client.portal
        assert portal is not None
        portal.call(self.flare.storage.write_batch, list(entries))
        return list(entries)

    def flush(self) -> None:
        """Write what the capture middleware buffered."""
        portal = self.client.portal
        assert portal is not None
        portal.call(self.flare.worker.flush)


def entry(minutes_ago: float = 0, **fields: Any) -> FlareLogEntry:
    """Build an entry ``minutes_ago`` minutes old; ``fields`` override defaults."""
    fields.setdefault("fingerprint", "fp-" + fields.get("event", "unhandled_exception"))
    timestamp = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return FlareLogEntry(timestamp=timestamp, **fields)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_dashboard(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Dashboard]]:
    """Start apps with Flare on ``backend``; ``options`` are FlareConfig fields."""
    clients: list[TestClient] = []

    def make(
        options: dict[str, Any] | None = None,
        *,
        client: tuple[str, int] = LOOPBACK_CLIENT,
        root_path: str = "",
        app: FastAPI | None = None,
        plugins: Sequence[Any] = (),
    ) -> Dashboard:
        settings: dict[str, Any] = {
            "storage_backend": backend,
            "storage_strict_startup": True,
            "worker_interval_seconds": 60,
        }
        if backend == "sqlite":
            settings["sqlite_path"] = str(tmp_path / f"flare-{len(clients)}.db")
        if backend == "redis":
            settings["redis_url"] = request.getfixturevalue("redis_url")
        settings.update(options or {})
        target = app or FastAPI()
        flare = setup(target, plugins=plugins, **settings)
        test_client = TestClient(
            target, base_url="http://localhost", client=client, root_path=root_path
        )
        test_client.__enter__()
        clients.append(test_client)
        return Dashboard(target, flare, test_client)

    yield make
    for test_client in reversed(clients):
        test_client.__exit__(None, None, None)


# Browser tests ------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium per module; tests open their own contexts.

    Playwright's sync API keeps an event loop running in this thread while
    it is open, which breaks every asyncio test that runs meanwhile, so it
    must close when the browser tests' module ends.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class WatchedPage:
    """A page that records console errors, dialogs and requests to other origins."""

    page: Any
    origin: str
    console_errors: list[str]
    dialogs: list[str]
    foreign_requests: list[str]
    failed_responses: list[str]

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.dialogs == []
        assert self.foreign_requests == []
        assert self.failed_responses == []


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., WatchedPage]]:
    """Open a 1280x900 page of a server at ``origin`` in a fresh context.

    ``headers`` are sent with every request of the page.
    """
    contexts: list[Any] = []

    def open_for(origin: str, headers: dict[str, str] | None = None) -> WatchedPage:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, extra_http_headers=headers
        )
        contexts.append(context)
        page = context.new_page()
        watched = WatchedPage(page, origin, [], [], [], [])

        def on_dialog(dialog: Any) -> None:
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_request(request: Any) -> None:
            if not request.url.startswith((origin + "/", "data:")):
                watched.foreign_requests.append(request.url)

        def on_response(response: Any) -> None:
            if response.status >= 400:
                watched.failed_responses.append(f"{response.status} {response.url}")

        def on_console(message: Any) -> None:
            if message.type == "error":
                watched.console_errors.append(message.text)

        page.on("dialog", on_dialog)
        page.on("request", on_request)
        page.on("response", on_response)
        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.console_errors.append(str(error)))
        return watched

    yield open_for
    for context in contexts:
        context.close()
