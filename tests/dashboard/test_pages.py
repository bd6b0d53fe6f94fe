"""The server-rendered page: URLs under any path and prefix, escaping, state."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.dashboard.apps import PAYLOADS
from tests.dashboard.conftest import Dashboard, entry

MakeDashboard = Callable[..., Dashboard]
RAW_MARKUP = ("<script>alert", "onerror=", "<svg onload", "onmouseover=")


@pytest.fixture
def backend() -> str:
    """Run these tests on the memory backend: they test the page, not storage."""
    return "memory"


def local_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/[^"]*)"', html)


def test_page_links_under_default_path(make_dashboard: MakeDashboard) -> None:
    html = make_dashboard().client.get("/flare").text
    assert 'data-base="/flare"' in html
    assert all(url.startswith("/flare") for url in local_urls(html))


def test_page_under_changed_path(make_dashboard: MakeDashboard) -> None:
    dashboard = make_dashboard({"dashboard_path": "/ops/errors/"})
    html = dashboard.client.get("/ops/errors").text
    assert 'data-base="/ops/errors"' in html
    for url in local_urls(html):
        assert url.startswith("/ops/errors")
        assert dashboard.client.get(url).status_code == 200
    assert dashboard.client.get("/flare").status_code == 404


def test_page_under_root_path(make_dashboard: MakeDashboard) -> None:
    dashboard = make_dashboard(root_path="/proxy")
    html = dashboard.client.get("/proxy/flare").text
    assert 'data-base="/proxy/flare"' in html
    assert all(
        url.startswith("/proxy/flare/") for url in local_urls(html) if "static" in url
    )


def test_page_title_escaped(make_dashboard: MakeDashboard) -> None:
    html = (
        make_dashboard({"dashboard_title": "<b>Ops</b> & co"}).client.get("/flare").text
    )
    assert "<title>&lt;b&gt;Ops&lt;/b&gt; &amp; co</title>" in html
    assert "<b>Ops</b>" not in html


def test_page_shows_stats(make_dashboard: MakeDashboard) -> None:
    dashboard = make_dashboard()
    dashboard.write([entry(1), entry(2, level="WARNING", event="slow")])
    html = dashboard.client.get("/flare").text
    assert 'id="stat-errors">1<' in html
    assert 'id="stat-warnings">1<' in html
    assert 'id="card-dropped" hidden' in html


def test_page_has_no_inline_script(make_dashboard: MakeDashboard) -> None:
    html = make_dashboard().client.get("/flare").text
    scripts = re.findall(r"<script[^>]*>", html)
    assert len(scripts) == 1
    assert " src=" in scripts[0]
    assert " style=" not in html
    assert " on" + "click=" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 'data-refresh="30" data-view="groups"'),
        ("?view=entries&refresh=2", 'data-refresh="2" data-view="entries"'),
        ("?view=bogus&refresh=0", 'data-refresh="30" data-view="groups"'),
        ("?refresh=99999999", 'data-refresh="30"'),
        ("?refresh=%C2%B2", 'data-refresh="30"'),
    ],
)
def test_page_state_attributes(
    make_dashboard: MakeDashboard, query: str, expected: str
) -> None:
    assert expected in make_dashboard().client.get("/flare" + query).text


def test_hostile_query_not_reflected(make_dashboard: MakeDashboard) -> None:
    dashboard = make_dashboard()
    dashboard.write([entry(1, message=" ".join(PAYLOADS), endpoint=PAYLOADS[0])])
    params = {
        name: " ".join(PAYLOADS) for name in ("view", "q", "refresh", "entry", "level")
    }
    html = dashboard.client.get("/flare", params=params).text
    for marker in RAW_MARKUP:
        assert marker not in html
