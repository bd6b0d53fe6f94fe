"""Browser login round trip in headless Chromium against a live uvicorn app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Cookie, Page, sync_playwright

from tests.servers import UvicornServer
from tests.zitadel.conftest import live_env
from tests.zitadel.provider import Provider

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SECRET = "browser-session-secret-0123456789-abcdefgh"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def live_app(
    provider_server: Provider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UvicornServer]:
    """Serve the app for every test of this module; each test gets its own context."""
    server = UvicornServer(
        "tests.zitadel.live_app:app",
        env=live_env(provider_server, SECRET),
        cwd=ROOT,
        log_path=tmp_path_factory.mktemp("browser") / "uvicorn.log",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def session_cookies(page: Page) -> list[Cookie]:
    return [
        cookie for cookie in page.context.cookies() if cookie["name"] == "flare_session"
    ]


def test_login_round_trip(
    provider: Provider, live_app: UvicornServer, page: Page
) -> None:
    visited: list[str] = []
    api_statuses: list[int] = []
    page.on("request", lambda request: visited.append(request.url))
    page.on(
        "response",
        lambda response: (
            api_statuses.append(response.status)
            if "/flare/api/" in response.url
            else None
        ),
    )

    response = page.goto(f"{live_app.url}/flare")
    page.wait_for_load_state("networkidle")

    assert response is not None
    assert response.status == 200
    assert page.url == f"{live_app.url}/flare"
    assert any(
        url.startswith(f"{provider.issuer}/oauth/v2/authorize") for url in visited
    )
    assert any(url.startswith(f"{live_app.url}/flare/auth/callback") for url in visited)
    cookies = session_cookies(page)
    assert len(cookies) == 1
    assert cookies[0]["httpOnly"] is True
    assert cookies[0]["sameSite"] == "Lax"
    assert cookies[0]["path"] == "/flare"
    assert "Flare" in page.title()
    assert api_statuses
    assert set(api_statuses) == {200}


def test_api_uses_session(
    provider: Provider, live_app: UvicornServer, page: Page
) -> None:
    page.goto(f"{live_app.url}/flare")
    api = page.request.get(f"{live_app.url}/flare/api/logs")
    assert api.status == 200


def test_logout_clears_cookie(
    provider: Provider, live_app: UvicornServer, page: Page
) -> None:
    page.goto(f"{live_app.url}/flare")
    assert len(session_cookies(page)) == 1

    page.goto(f"{live_app.url}/flare/auth/logout")

    assert session_cookies(page) == []
    assert "signed out" in page.content()
    api = page.request.get(f"{live_app.url}/flare/api/logs")
    assert api.status == 401


def test_open_redirect_refused(
    provider: Provider, live_app: UvicornServer, page: Page
) -> None:
    target = quote("https://evil.example/", safe="")
    response = page.goto(f"{live_app.url}/flare/auth/login?next={target}")
    assert response is not None
    assert response.status == 400
    assert page.url.startswith(live_app.url)
    assert session_cookies(page) == []
