"""The dashboard in headless Chromium against a live uvicorn server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import expect

from tests.dashboard.apps import HOSTILE, PAYLOADS
from tests.dashboard.conftest import BACKENDS, WatchedPage
from tests.servers import RedisServer, UvicornServer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
OpenPage = Callable[..., WatchedPage]
StartServer = Callable[..., UvicornServer]
SEEDED = 6  # /seed writes three entries; start() adds two /boom and one /missing


def start(
    uvicorn_server: StartServer,
    app: str = "app",
    *,
    seed: bool = True,
    headers: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    **env: str,
) -> UvicornServer:
    """Serve ``tests.dashboard.apps:<app>`` and, with ``seed``, write the seed entries.

    Storage is memory unless ``env`` sets ``FLARE_STORAGE_BACKEND``.
    """
    settings = {
        "FLARE_STORAGE_BACKEND": "memory",
        "FLARE_WORKER_INTERVAL_SECONDS": "0.1",
        **env,
    }
    server = uvicorn_server(
        f"tests.dashboard.apps:{app}", env=settings, cwd=ROOT, extra_args=extra_args
    )
    if not seed:
        return server
    # One connection per request: uvicorn closes the connection of a request
    # whose exception escaped the app, so a kept-alive one could be reset.
    base = server.url + ("/proxy" if app == "prefixed" else "")
    for path in ("/seed", "/boom", "/missing/7", "/boom"):
        httpx.get(base + path)
    logs_url = base + env.get("FLARE_DASHBOARD_PATH", "/flare") + "/api/logs"
    wait_for(
        lambda: len(httpx.get(logs_url, headers=headers).json()["items"]) >= SEEDED
    )
    return server


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met within the timeout")
        time.sleep(0.05)


def api(server: UvicornServer, path: str) -> Any:
    return httpx.get(f"{server.url}/flare/api/{path}").json()


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornServer]:
    """One seeded server for the tests that only read; they must not change it."""
    log_path = tmp_path_factory.mktemp("uvicorn") / "seeded.log"
    servers: list[UvicornServer] = []

    def start_server(app: str, **kwargs: Any) -> UvicornServer:
        server = UvicornServer(app, log_path=log_path, **kwargs).start()
        servers.append(server)
        return server

    yield start(start_server)
    for server in servers:
        server.stop()


def test_groups_default_view(
    seeded_server: UvicornServer, open_page: OpenPage, artifacts_dir: Path
) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare")
    expect(page.locator("#groups-view")).to_be_visible()
    expect(page.locator("#entries-view")).to_be_hidden()
    expect(page.locator(".group-row")).to_have_count(5)
    expect(page.locator("#chart svg rect.bar-error")).to_have_count(24)
    expect(page.locator(".group-row .sparkline").first).to_be_visible()
    expect(page.locator("#stat-total")).to_have_text(str(SEEDED))
    page.screenshot(path=str(artifacts_dir / "dashboard-groups.png"), full_page=True)
    watched.assert_clean()


def test_resolve_group_from_ui(
    uvicorn_server: StartServer, open_page: OpenPage
) -> None:
    server = start(uvicorn_server)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare")
    row = page.locator(".group-row", has_text="RuntimeError")
    row.get_by_role("button", name="Resolve").click()
    expect(row.locator(".status")).to_have_text("resolved")
    expect(row.get_by_role("button", name="Reopen")).to_be_visible()
    statuses = {
        group["title"]: group["status"] for group in api(server, "groups")["items"]
    }
    assert statuses["RuntimeError: boom: the order total went negative"] == "resolved"
    row.get_by_role("button", name="Ignore").click()
    expect(page.locator(".group-row", has_text="RuntimeError")).to_have_count(0)
    page.locator("#group-filters select[name=status]").select_option("ignored")
    expect(page.locator(".group-row")).to_have_count(1)
    assert "status=ignored" in page.url
    watched.assert_clean()


def test_group_links_to_entries(
    seeded_server: UvicornServer, open_page: OpenPage
) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare")
    row = page.locator(".group-row", has_text="RuntimeError")
    row.get_by_role("link", name="Entries").click()
    expect(page.locator("#entries-view")).to_be_visible()
    expect(page.locator(".entry-row")).to_have_count(2)
    expect(page.locator("#fingerprint-filter")).to_be_visible()
    assert "fingerprint=" in page.url
    page.locator("#fingerprint-clear").click()
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    watched.assert_clean()


def test_entries_filters_and_search(
    seeded_server: UvicornServer, open_page: OpenPage, artifacts_dir: Path
) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare?view=entries")
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    page.screenshot(path=str(artifacts_dir / "dashboard-entries.png"), full_page=True)

    page.locator("#entry-filters select[name=level]").select_option("WARNING")
    expect(page.locator(".entry-row")).to_have_count(2)
    expect(page.locator(".entry-row .badge-error")).to_have_count(0)
    page.locator("#entry-filters-clear").click()
    expect(page.locator(".entry-row")).to_have_count(SEEDED)

    page.locator("#entry-filters input[name=q]").fill("declined")
    page.locator("#entry-filters input[name=q]").press("Enter")
    expect(page.locator(".entry-row")).to_have_count(1)
    assert "q=declined" in page.url

    page.goto(page.url)
    expect(page.locator(".entry-row")).to_have_count(1)
    expect(page.locator("#entry-filters input[name=q]")).to_have_value("declined")

    page.locator("#entry-filters input[name=q]").fill("")
    page.locator("#entry-filters input[name=status]").fill("404")
    page.locator("#entry-filters input[name=status]").press("Enter")
    expect(page.locator(".entry-row")).to_have_count(1)
    page.locator("#entry-filters input[name=status]").fill("")
    page.locator("#entry-filters input[name=endpoint]").fill("/boom")
    page.locator("#entry-filters input[name=endpoint]").press("Enter")
    expect(page.locator(".entry-row")).to_have_count(2)

    page.locator("#entry-filters input[name=until]").fill("2000-01-01T00:00")
    expect(page.locator(".entry-row")).to_have_count(0)
    expect(page.locator("#entries-empty")).to_contain_text("No entries match")
    assert "until=2000-01-01T" in page.url or "until=1999-12-31T" in page.url
    page.locator("#entry-filters input[name=until]").fill("")
    page.locator("#entry-filters input[name=since]").fill("2000-01-01T00:00")
    expect(page.locator(".entry-row")).to_have_count(2)
    watched.assert_clean()


def test_modal_shows_stack_trace(
    seeded_server: UvicornServer, open_page: OpenPage, artifacts_dir: Path
) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=server.url
    )
    page.goto(server.url + "/flare?view=entries")
    page.locator(".entry-row", has_text="order total").first.click()
    modal = page.locator("#entry-modal")
    expect(modal).to_be_visible()
    expect(page.locator("#modal-stack")).to_contain_text(
        "Traceback (most recent call last)"
    )
    expect(page.locator("#modal-stack")).to_contain_text("RuntimeError")
    expect(page.locator("#modal-meta")).to_contain_text("/boom")
    assert "entry=" in page.url
    page.screenshot(path=str(artifacts_dir / "dashboard-modal.png"))

    page.locator("#modal-copy").click()
    expect(page.locator("#modal-copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Traceback")

    entry_url = page.url
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    assert "entry=" not in page.url
    page.goto(entry_url)
    expect(page.locator("#modal-stack")).to_contain_text("RuntimeError")
    watched.assert_clean()


def test_modal_shows_context(seeded_server: UvicornServer, open_page: OpenPage) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare?view=entries")
    page.locator(".entry-row", has_text="declined").click()
    expect(page.locator("#modal-context")).to_contain_text('"order": 42')
    expect(page.locator("#modal-stack-section")).to_be_hidden()
    watched.assert_clean()


def test_auto_refresh_shows_new_entry(
    uvicorn_server: StartServer, open_page: OpenPage
) -> None:
    server = start(uvicorn_server)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare?view=entries&refresh=1")
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    page.evaluate("window.notReloaded = true")
    httpx.get(server.url + "/missing/after-load")
    expect(page.locator(".entry-row")).to_have_count(SEEDED + 1)
    expect(page.locator(".entry-row").first).to_contain_text("/missing/after-load")
    expect(page.locator("#new-entries")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    watched.assert_clean()


def test_auto_refresh_toggle_remembered(
    uvicorn_server: StartServer, open_page: OpenPage
) -> None:
    server = start(uvicorn_server)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare?view=entries&refresh=1")
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    page.locator("#auto-refresh").uncheck()
    page.reload()
    expect(page.locator("#auto-refresh")).not_to_be_checked()
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    httpx.get(server.url + "/missing/while-paused")
    page.wait_for_timeout(2500)
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    watched.assert_clean()


def test_hostile_entry_shown_as_text(
    seeded_server: UvicornServer, open_page: OpenPage
) -> None:
    server = seeded_server
    watched = open_page(server.url)
    page = watched.page

    page.goto(server.url + "/flare")
    row = page.locator(".group-row", has_text="ValueError")
    expect(row.locator(".group-title")).to_have_text("ValueError: " + HOSTILE)
    row.locator(".group-title").hover()

    page.goto(server.url + "/flare?view=entries")
    row = page.locator(".entry-row", has_text="hostile_input")
    expect(row.locator(".cell-message")).to_have_text(HOSTILE)
    expect(row.locator(".cell-endpoint")).to_have_text("/hostile/" + PAYLOADS[0])
    row.locator(".cell-message").hover()
    row.click()
    expect(page.locator("#modal-message")).to_have_text(HOSTILE)
    expect(page.locator("#modal-context")).to_contain_text(PAYLOADS[4])
    page.keyboard.press("Escape")

    page.goto(server.url + "/flare?" + urlencode({"view": "entries", "q": "<script>"}))
    expect(page.locator(".entry-row")).to_have_count(1)
    page.locator("#entry-filters input[name=q]").fill(PAYLOADS[1])
    page.locator("#entry-filters input[name=q]").press("Enter")
    expect(page.locator(".entry-row")).to_have_count(1)

    page.wait_for_timeout(300)
    assert page.locator("img").count() == 0
    assert page.locator("[onerror], [onload], [onmouseover]").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    watched.assert_clean()


def test_html_has_no_raw_payload(uvicorn_server: StartServer) -> None:
    server = start(uvicorn_server, FLARE_DASHBOARD_TITLE="<script>alert(6)</script>")
    query = (
        "q=<script>alert(1)</script>&entry=<svg onload=x>&view=<img src=x onerror=y>"
    )
    for path in ("/flare", "/flare?view=entries", "/flare?" + query):
        html = httpx.get(server.url + path).text
        assert "<script>alert" not in html, path
        assert "onerror=" not in html, path
        assert "<svg onload" not in html, path


def test_cross_site_post_rejected(uvicorn_server: StartServer, browser: Any) -> None:
    server = start(uvicorn_server)
    target = server.url
    attacker = uvicorn_server(
        "tests.dashboard.apps:attacker", env={"FLARE_TEST_TARGET": target}, cwd=ROOT
    )
    [group] = [
        g for g in api(server, "groups")["items"] if g["title"].startswith("Runtime")
    ]

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{attacker.url}/attack?fingerprint={group['fingerprint']}")
    expect(page.locator("#fetch-result")).to_have_text("blocked")
    with page.expect_navigation():
        page.locator("#form").evaluate("form => form.submit()")
    assert page.url.startswith(target)
    assert "X-Flare-CSRF" in page.content()
    context.close()

    status = {g["fingerprint"]: g["status"] for g in api(server, "groups")["items"]}
    assert status[group["fingerprint"]] == "unresolved"


@pytest.mark.parametrize(
    ("app", "env", "url"),
    [
        ("app", {"FLARE_DASHBOARD_PATH": "/ops/errors"}, "/ops/errors"),
        ("prefixed", {}, "/proxy/flare"),
    ],
)
def test_changed_path_and_prefix(
    uvicorn_server: StartServer,
    open_page: OpenPage,
    app: str,
    env: dict[str, str],
    url: str,
) -> None:
    server = start(uvicorn_server, app, **env)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + url)
    expect(page.locator(".group-row")).to_have_count(5)
    page.locator("#tab-entries").click()
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    page.locator(".entry-row").first.click()
    expect(page.locator("#entry-modal")).to_be_visible()
    assert page.url.startswith(server.url + url + "?")
    watched.assert_clean()


def test_empty_state(uvicorn_server: StartServer, open_page: OpenPage) -> None:
    server = start(uvicorn_server, seed=False)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare")
    expect(page.locator("#groups-empty")).to_contain_text("No error groups yet")
    page.locator("#tab-entries").click()
    expect(page.locator("#entries-empty")).to_contain_text("No entries yet")
    expect(page.locator("#stat-latest")).to_have_text("none")
    watched.assert_clean()


def test_load_more_while_entries_arrive(
    uvicorn_server: StartServer, open_page: OpenPage
) -> None:
    server = start(uvicorn_server)
    httpx.get(server.url + "/seed-many", params={"count": 60})
    total = SEEDED + 60
    wait_for(lambda: api(server, "stats")["total"] == total)
    watched = open_page(server.url)
    page = watched.page
    page.goto(server.url + "/flare?view=entries&refresh=1")
    rows = page.locator(".entry-row")
    expect(rows).to_have_count(50)

    httpx.get(server.url + "/missing/during-paging")
    expect(rows).to_have_count(51)
    page.locator("#entries-more").click()
    expect(rows).to_have_count(total + 1)
    expect(page.locator("#entries-more")).to_be_hidden()
    ids = rows.evaluate_all("rows => rows.map(row => row.dataset.id)")
    assert len(set(ids)) == total + 1
    watched.assert_clean()


@pytest.mark.skipif("redis" not in BACKENDS, reason="flare-redis is not installed")
def test_storage_down_error_state(
    uvicorn_server: StartServer, open_page: OpenPage, artifacts_dir: Path
) -> None:
    redis = RedisServer().start()
    try:
        server = start(
            uvicorn_server, FLARE_STORAGE_BACKEND="redis", FLARE_REDIS_URL=redis.url
        )
        watched = open_page(server.url)
        page = watched.page
        page.goto(server.url + "/flare?refresh=1")
        expect(page.locator(".group-row")).to_have_count(5)
        redis.stop()
        banner = page.locator("#error-banner")
        expect(banner).to_contain_text("redis backend is unreachable")
        expect(page.locator(".group-row")).to_have_count(5)
        page.screenshot(path=str(artifacts_dir / "dashboard-storage-down.png"))
        redis.start()
        expect(banner).to_be_hidden()
    finally:
        redis.stop()
    assert watched.dialogs == []
    assert watched.foreign_requests == []


def test_behind_reverse_proxy(uvicorn_server: StartServer, open_page: OpenPage) -> None:
    token = {"Authorization": "Bearer proxy-test-token"}
    upstream = start(
        uvicorn_server,
        headers=token,
        extra_args=["--root-path", "/proxy"],
        FLARE_TEST_TOKEN="proxy-test-token",
    )
    proxy = uvicorn_server(
        "tests.dashboard.apps:proxy",
        env={"FLARE_TEST_UPSTREAM": upstream.url},
        cwd=ROOT,
    )
    assert httpx.get(proxy.url + "/proxy/flare/api/logs").status_code == 401

    watched = open_page(proxy.url, headers=token)
    page = watched.page
    page.goto(proxy.url + "/proxy/flare")
    row = page.locator(".group-row", has_text="RuntimeError")
    row.get_by_role("button", name="Resolve").click()
    expect(row.locator(".status")).to_have_text("resolved")
    page.locator("#tab-entries").click()
    expect(page.locator(".entry-row")).to_have_count(SEEDED)
    page.locator(".entry-row").first.click()
    expect(page.locator("#entry-modal")).to_be_visible()
    assert page.url.startswith(proxy.url + "/proxy/flare?")
    watched.assert_clean()
