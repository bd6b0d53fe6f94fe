"""Access to the dashboard, cross-site requests, headers, and its own requests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import HTTPException, Request

from flare_core import MemoryStorage, StorageUnavailable, hookimpl
from flare_dashboard import CONTENT_SECURITY_POLICY
from flare_dashboard.plugin import flare_should_capture
from tests.dashboard.conftest import BACKENDS, Dashboard, entry
from tests.servers import RedisServer

MakeDashboard = Callable[..., Dashboard]
REMOTE_CLIENT = ("203.0.113.7", 40000)
STATUS_URL = "/flare/api/groups/fp-unhandled_exception/status"
RESOLVE = {"status": "resolved"}


@pytest.fixture
def backend() -> str:
    """Run these tests on the memory backend: they test the dashboard, not storage."""
    return "memory"


def require_token(request: Request) -> None:
    if request.headers.get("authorization") != "Bearer letmein":
        raise HTTPException(401, "missing or wrong token")


class TestLoopbackGuard:
    @pytest.mark.parametrize(
        "path", ["/flare", "/flare/", "/flare/api/logs", "/flare/api/health"]
    )
    def test_remote_client_rejected(
        self, make_dashboard: MakeDashboard, path: str
    ) -> None:
        response = make_dashboard(client=REMOTE_CLIENT).client.get(path)
        assert response.status_code == 403
        assert "dashboard_auth_dependency" in response.json()["detail"]
        assert "FLARE_DASHBOARD_PUBLIC=true" in response.json()["detail"]

    @pytest.mark.parametrize(
        "header",
        [
            {"X-Forwarded-For": "198.51.100.1"},
            {"Forwarded": "for=198.51.100.1"},
            {"X-Real-IP": "198.51.100.1"},
            {"X-Forwarded-For": ""},
            {"X-Forwarded-Host": "flare.example.com"},
            {"True-Client-IP": "198.51.100.1"},
            {"CF-Connecting-IP": "198.51.100.1"},
        ],
    )
    def test_proxied_loopback_rejected(
        self, make_dashboard: MakeDashboard, header: dict[str, str]
    ) -> None:
        response = make_dashboard().client.get("/flare/api/logs", headers=header)
        assert response.status_code == 403

    @pytest.mark.parametrize(
        "host", ["rebind.attacker.example", "rebind.attacker.example:8000", ""]
    )
    def test_foreign_host_rejected(
        self, make_dashboard: MakeDashboard, host: str
    ) -> None:
        response = make_dashboard().client.get(
            "/flare/api/logs", headers={"Host": host}
        )
        assert response.status_code == 403

    @pytest.mark.parametrize(
        "host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "app.localhost:80"]
    )
    def test_loopback_host_allowed(
        self, make_dashboard: MakeDashboard, host: str
    ) -> None:
        response = make_dashboard().client.get(
            "/flare/api/logs", headers={"Host": host}
        )
        assert response.status_code == 200

    def test_ipv6_loopback_allowed(self, make_dashboard: MakeDashboard) -> None:
        response = make_dashboard(client=("::1", 40000)).client.get("/flare/api/logs")
        assert response.status_code == 200

    def test_public_opens_to_all(self, make_dashboard: MakeDashboard) -> None:
        dashboard = make_dashboard({"dashboard_public": True}, client=REMOTE_CLIENT)
        assert dashboard.client.get("/flare/api/logs").status_code == 200

    def test_static_assets_public(self, make_dashboard: MakeDashboard) -> None:
        response = make_dashboard(client=REMOTE_CLIENT).client.get(
            "/flare/static/dashboard.js"
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")


class TestAuthDependency:
    @pytest.mark.parametrize("path", ["/flare", "/flare/api/logs", "/flare/api/stats"])
    def test_rejects_without_token(
        self, make_dashboard: MakeDashboard, path: str
    ) -> None:
        dashboard = make_dashboard({"dashboard_auth_dependency": require_token})
        assert dashboard.client.get(path).status_code == 401

    def test_allows_remote_with_token(self, make_dashboard: MakeDashboard) -> None:
        dashboard = make_dashboard(
            {"dashboard_auth_dependency": require_token}, client=REMOTE_CLIENT
        )
        response = dashboard.client.get(
            "/flare/api/logs", headers={"Authorization": "Bearer letmein"}
        )
        assert response.status_code == 200

    def test_guards_status_change(self, make_dashboard: MakeDashboard) -> None:
        dashboard = make_dashboard({"dashboard_auth_dependency": require_token})
        response = dashboard.client.post(
            STATUS_URL, json=RESOLVE, headers={"X-Flare-CSRF": "1"}
        )
        assert response.status_code == 401


class TestCrossSite:
    @pytest.fixture
    def dashboard(self, make_dashboard: MakeDashboard) -> Dashboard:
        dashboard = make_dashboard()
        dashboard.write([entry(1, message="boom")])
        return dashboard

    def status(self, dashboard: Dashboard) -> str:
        group = dashboard.client.get("/flare/api/groups/fp-unhandled_exception").json()
        return str(group["group"]["status"])

    def test_missing_header_rejected(self, dashboard: Dashboard) -> None:
        response = dashboard.client.post(STATUS_URL, json=RESOLVE)
        assert response.status_code == 403
        assert "X-Flare-CSRF" in response.json()["detail"]
        assert self.status(dashboard) == "unresolved"

    @pytest.mark.parametrize("site", ["cross-site", "same-site", "none"])
    def test_fetch_site_rejected(self, dashboard: Dashboard, site: str) -> None:
        headers = {"X-Flare-CSRF": "1", "Sec-Fetch-Site": site}
        response = dashboard.client.post(STATUS_URL, json=RESOLVE, headers=headers)
        assert response.status_code == 403
        assert self.status(dashboard) == "unresolved"

    @pytest.mark.parametrize(
        "origin", ["http://127.0.0.1:9", "null", "http://evil.test"]
    )
    def test_foreign_origin_rejected(self, dashboard: Dashboard, origin: str) -> None:
        headers = {"X-Flare-CSRF": "1", "Origin": origin}
        response = dashboard.client.post(STATUS_URL, json=RESOLVE, headers=headers)
        assert response.status_code == 403

    def test_same_origin_accepted(self, dashboard: Dashboard) -> None:
        headers = {
            "X-Flare-CSRF": "1",
            "Origin": "http://testserver",
            "Sec-Fetch-Site": "same-origin",
        }
        response = dashboard.client.post(STATUS_URL, json=RESOLVE, headers=headers)
        assert response.status_code == 200
        assert self.status(dashboard) == "resolved"

    def test_get_cannot_change_status(self, dashboard: Dashboard) -> None:
        response = dashboard.client.get(STATUS_URL, params=RESOLVE)
        assert response.status_code == 405


class TestHeaders:
    @pytest.mark.parametrize(
        "path", ["/flare", "/flare/api/logs", "/flare/api/logs/nope"]
    )
    def test_hardening_headers(self, make_dashboard: MakeDashboard, path: str) -> None:
        headers = make_dashboard().client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"

    def test_api_errors_carry_headers(self, make_dashboard: MakeDashboard) -> None:
        response = make_dashboard().client.get(
            "/flare/api/logs", params={"limit": "-1"}
        )
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"

    def test_static_versioned_is_immutable(self, make_dashboard: MakeDashboard) -> None:
        client = make_dashboard().client
        page = client.get("/flare").text
        css_url = page.split('<link rel="stylesheet" href="')[1].split('"')[0]
        response = client.get(css_url)
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["content-type"].startswith("text/css")

    def test_static_unknown_is_404(self, make_dashboard: MakeDashboard) -> None:
        client = make_dashboard().client
        assert client.get("/flare/static/..%2Fplugin.py").status_code == 404
        assert client.get("/flare/static/nope.js").status_code == 404


class _DownStorage(MemoryStorage):
    """A memory storage whose reads fail the way an unreachable backend's do."""

    name = "down"

    async def _unreachable(self, *args: object, **kwargs: object) -> None:
        raise StorageUnavailable("connection refused", backend="down")

    query = get = stats = timeline = query_groups = get_group = _unreachable  # type: ignore[assignment]
    set_group_status = group_sparklines = _unreachable  # type: ignore[assignment]


class _DownPlugin:
    @hookimpl
    def flare_storage(self, backend: str) -> MemoryStorage | None:
        return _DownStorage() if backend == "down" else None


class TestStorageDown:
    @pytest.fixture
    def dashboard(self, make_dashboard: MakeDashboard) -> Dashboard:
        return make_dashboard({"storage_backend": "down"}, plugins=[_DownPlugin()])

    @pytest.mark.parametrize(
        "path", ["logs", "logs/1", "stats", "timeline", "groups", "groups/fp"]
    )
    def test_api_is_503(self, dashboard: Dashboard, path: str) -> None:
        response = dashboard.client.get(f"/flare/api/{path}")
        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]

    def test_page_shows_error_state(self, dashboard: Dashboard) -> None:
        response = dashboard.client.get("/flare")
        assert response.status_code == 503
        assert "The down backend is unreachable" in response.text
        assert (
            'id="error-banner" class="banner banner-error" role="alert">'
            in response.text
        )

    def test_health_still_answers(self, dashboard: Dashboard) -> None:
        assert dashboard.client.get("/flare/api/health").status_code == 200


@pytest.mark.skipif("redis" not in BACKENDS, reason="flare-redis is not installed")
def test_redis_down_is_503(make_dashboard: MakeDashboard) -> None:
    server = RedisServer().start()
    try:
        dashboard = make_dashboard(
            {"storage_backend": "redis", "redis_url": server.url}
        )
        assert dashboard.client.get("/flare/api/logs").status_code == 200
    finally:
        server.stop()
    response = dashboard.client.get("/flare/api/logs")
    assert response.status_code == 503
    assert "redis backend is unreachable" in response.json()["detail"]
    page = dashboard.client.get("/flare")
    assert page.status_code == 503
    assert "redis backend is unreachable" in page.text


class TestOwnRequestsNotCaptured:
    def stored_endpoints(self, dashboard: Dashboard) -> list[str]:
        dashboard.flush()
        page = dashboard.client.get("/flare/api/logs").json()
        return [item["endpoint"] for item in page["items"]]

    def test_dashboard_404_not_captured(self, make_dashboard: MakeDashboard) -> None:
        dashboard = make_dashboard()
        dashboard.client.get("/flare/api/logs/999")
        dashboard.client.get("/flare/api/logs", params={"limit": "-1"})
        dashboard.client.get("/elsewhere")
        assert self.stored_endpoints(dashboard) == ["/elsewhere"]

    def test_rejected_requests_not_captured(
        self, make_dashboard: MakeDashboard
    ) -> None:
        dashboard = make_dashboard()
        dashboard.client.get("/flare", headers={"X-Forwarded-For": "198.51.100.1"})
        assert self.stored_endpoints(dashboard) == []

    @pytest.mark.parametrize(
        ("path", "root_path", "expected"),
        [
            ("/flare/api/logs", "", False),
            ("/flare", "", False),
            ("/proxy/flare/api/logs", "/proxy", False),
            ("/flarex", "", None),
            ("/other/flare", "", None),
            ("/proxy/orders", "/proxy", None),
        ],
    )
    def test_hook_matches_dashboard_path(
        self,
        make_dashboard: MakeDashboard,
        path: str,
        root_path: str,
        expected: bool | None,
    ) -> None:
        app = make_dashboard().app
        scope = {"type": "http", "path": path, "root_path": root_path, "app": app}
        assert flare_should_capture(scope) is expected

    def test_hook_ignores_apps_without_flare(self) -> None:
        scope = {"type": "http", "path": "/flare", "root_path": "", "app": object()}
        assert flare_should_capture(scope) is None
