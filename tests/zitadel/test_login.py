"""Browser login over HTTP: redirects, callback checks, cookies and logout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from starlette.middleware.sessions import SessionMiddleware

from flare_zitadel import make_zitadel_dependency
from tests.servers import free_port
from tests.zitadel.conftest import asgi_client, bearer, guarded_app
from tests.zitadel.provider import CLIENT_ID, PROJECT_ID, Provider

SECRET = "test-session-secret-0123456789-abcdefghij"


def login_options(provider: Provider) -> dict[str, Any]:
    return {
        "zitadel_domain": f"127.0.0.1:{provider.port}",
        "zitadel_client_id": CLIENT_ID,
        "zitadel_project_id": PROJECT_ID,
        "zitadel_issuer": provider.issuer,
        "zitadel_session_secret": SECRET,
    }


@pytest.fixture
async def app_client(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = guarded_app(login_options(provider))
    async with asgi_client(app) as client:
        yield client


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """Parse each Set-Cookie header of a response, by cookie name."""
    parsed: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            parsed[name] = cookie
    return parsed


async def log_in(
    client: httpx.AsyncClient, next_path: str = "/flare/probe"
) -> httpx.Response:
    """Run the whole login against the provider and return the callback's response."""
    start = await client.get("/flare/auth/login", params={"next": next_path})
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        authorize = await browser.get(start.headers["location"])
    assert authorize.status_code == 302, authorize.text
    callback = urlsplit(authorize.headers["location"])
    return await client.get(f"{callback.path}?{callback.query}")


async def test_page_redirects_to_login(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/flare/probe", params={"level": "error"})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/flare/auth/login"
    assert parse_qs(location.query) == {"next": ["/flare/probe?level=error"]}


async def test_login_redirects_to_provider(
    provider: Provider, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.get(
        "/flare/auth/login", params={"next": "/flare/probe"}
    )
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == provider.issuer
    assert location.path == "/oauth/v2/authorize"
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/flare/auth/callback"]
    assert "nonce" in query
    assert "openid" in query["scope"][0].split()


async def test_state_cookie_scoped_to_auth(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/flare/auth/login")
    cookie = set_cookies(response)["flare_login"]["flare_login"]
    assert cookie["path"] == "/flare/auth"
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"


async def test_round_trip_sets_session(
    provider: Provider, app_client: httpx.AsyncClient
) -> None:
    callback = await log_in(app_client)
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"] == "/flare/probe"
    session = set_cookies(callback)["flare_session"]["flare_session"]
    assert session["path"] == "/flare"
    assert session["httponly"] is True
    assert session["samesite"] == "lax"
    assert not session["secure"]
    page = await app_client.get("/flare/probe")
    api = await app_client.get("/flare/api/probe")
    assert page.status_code == 200
    assert api.status_code == 200
    assert provider.token_requests[0]["code_verifier"]


async def test_session_cookie_secure_on_https(provider: Provider) -> None:
    app, _ = guarded_app(login_options(provider))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver"
    ) as client:
        callback = await log_in(client)
    session = set_cookies(callback)["flare_session"]["flare_session"]
    assert session["secure"] is True


async def test_logout_clears_session(app_client: httpx.AsyncClient) -> None:
    await log_in(app_client)
    logout = await app_client.get("/flare/auth/logout")
    cleared = set_cookies(logout)["flare_session"]["flare_session"]
    after = await app_client.get("/flare/probe")
    assert logout.status_code == 200
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/flare"
    assert after.status_code == 303


async def test_api_without_credentials_is_401(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/flare/api/probe")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_post_page_without_credentials_is_401(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post("/flare/probe")
    assert response.status_code == 401


async def test_bearer_still_accepted(
    provider: Provider, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.get(
        "/flare/api/probe", headers=bearer(provider.token())
    )
    assert response.status_code == 200


async def test_invalid_bearer_not_redirected(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/flare/probe", headers=bearer("a.b.c"))
    assert response.status_code == 401


async def test_forged_session_rejected(app_client: httpx.AsyncClient) -> None:
    forged = URLSafeTimedSerializer("another-secret-" * 3, salt="flare-zitadel-session")
    value = forged.dumps({"sub": "mallory", "aud": CLIENT_ID})
    app_client.cookies.set("flare_session", value)
    response = await app_client.get("/flare/api/probe")
    assert response.status_code == 401


async def test_session_of_other_client_rejected(app_client: httpx.AsyncClient) -> None:
    signer = URLSafeTimedSerializer(SECRET, salt="flare-zitadel-session")
    value = signer.dumps({"sub": "user-1", "aud": "another-client"})
    app_client.cookies.set("flare_session", value)
    response = await app_client.get("/flare/api/probe")
    assert response.status_code == 401


UNSAFE_NEXT = [
    "https://evil.example/flare",
    "//evil.example/flare",
    "/\\evil.example",
    "\\\\evil.example",
    "/flare\\..\\admin",
    "/other",
    "/flarex",
    "/flare@evil.example",
    "/flare/../admin",
    "/flare/%2e%2e/admin",
    "/flare/./x",
    "javascript:alert(1)",
    "/flare/\r\nSet-Cookie:x=1",
    "/flare/auth/logout",
    "flare",
    " /flare",
    "/flare ",
]


@pytest.mark.parametrize("next_path", UNSAFE_NEXT)
async def test_unsafe_next_rejected(
    app_client: httpx.AsyncClient, next_path: str
) -> None:
    response = await app_client.get("/flare/auth/login", params={"next": next_path})
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "next_path", ["/flare", "/flare/", "/flare/probe?level=error&q=%2F"]
)
async def test_safe_next_accepted(
    app_client: httpx.AsyncClient, next_path: str
) -> None:
    callback = await log_in(app_client, next_path)
    assert callback.status_code == 303
    assert callback.headers["location"] == next_path


async def test_callback_without_state_cookie(
    provider: Provider, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.get(
        "/flare/auth/callback", params={"code": "x", "state": "y"}
    )
    assert response.status_code == 400
    assert "/flare/auth/login" in response.json()["detail"]


async def test_callback_state_mismatch(app_client: httpx.AsyncClient) -> None:
    start = await app_client.get("/flare/auth/login")
    assert start.status_code == 302
    response = await app_client.get(
        "/flare/auth/callback", params={"code": "x", "state": "y"}
    )
    assert response.status_code == 400


async def test_callback_provider_error(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(
        "/flare/auth/callback", params={"error": "access_denied<script>", "state": "y"}
    )
    assert response.status_code == 401
    assert "access_denied" in response.json()["detail"]
    assert "<script>" not in response.text


async def test_replayed_code_rejected(app_client: httpx.AsyncClient) -> None:
    start = await app_client.get("/flare/auth/login")
    async with httpx.AsyncClient() as browser:
        authorize = await browser.get(start.headers["location"])
    callback = urlsplit(authorize.headers["location"])
    first = await app_client.get(f"{callback.path}?{callback.query}")
    app_client.cookies.clear()
    second = await app_client.get(f"{callback.path}?{callback.query}")
    assert first.status_code == 303
    assert second.status_code == 400


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"nonce": "another-nonce"}, "nonce"),
        ({"aud": [PROJECT_ID]}, "audience"),
        ({"azp": "other-client"}, "azp"),
        ({"iss": "https://evil.example"}, "issuer"),
    ],
    ids=["nonce", "aud-project-only", "azp", "iss"],
)
async def test_bad_id_token_rejected(
    provider: Provider,
    app_client: httpx.AsyncClient,
    claims: dict[str, object],
    reason: str,
) -> None:
    provider.id_token_claims = claims
    callback = await log_in(app_client)
    assert callback.status_code == 401
    assert reason in callback.json()["detail"]
    assert "flare_session" not in set_cookies(callback)


async def test_host_session_untouched(provider: Provider) -> None:
    app, _ = guarded_app(login_options(provider))
    app.add_middleware(SessionMiddleware, secret_key="host-app-secret")
    async with asgi_client(app) as client:
        start = await client.get("/flare/auth/login")
        callback = await log_in(client)
    assert "session" not in set_cookies(start)
    assert "session" not in set_cookies(callback)


async def test_no_secret_means_401(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    options = login_options(provider)
    del options["zitadel_session_secret"]
    app, _ = guarded_app(options)
    async with asgi_client(app) as client:
        page = await client.get("/flare/probe")
        login = await client.get("/flare/auth/login")
    assert page.status_code == 401
    assert login.status_code == 404


async def test_discovery_down_is_503(provider: Provider) -> None:
    options = {
        **login_options(provider),
        "zitadel_issuer": f"http://127.0.0.1:{free_port()}",
    }
    app, _ = guarded_app(options)
    async with asgi_client(app) as client:
        response = await client.get("/flare/auth/login")
    assert response.status_code == 503


async def test_root_path_prefixes_urls_and_cookies(provider: Provider) -> None:
    app, _ = guarded_app(login_options(provider))
    async with asgi_client(app, root_path="/prefix") as client:
        page = await client.get("/prefix/flare/probe")
        start = await client.get(
            "/prefix/flare/auth/login", params={"next": "/flare/probe"}
        )
        async with httpx.AsyncClient() as browser:
            authorize = await browser.get(start.headers["location"])
        callback = urlsplit(authorize.headers["location"])
        done = await client.get(f"{callback.path}?{callback.query}")
    redirect_uri = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"]
    assert page.headers["location"] == "/prefix/flare/auth/login?next=/flare/probe"
    assert redirect_uri == ["http://testserver/prefix/flare/auth/callback"]
    assert (
        set_cookies(start)["flare_login"]["flare_login"]["path"] == "/prefix/flare/auth"
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/prefix/flare/probe"
    assert (
        set_cookies(done)["flare_session"]["flare_session"]["path"] == "/prefix/flare"
    )


@pytest.mark.parametrize(("subject", "status"), [("user-1", 403), ("admin", 303)])
async def test_manual_guard_login_runs_claims_check(
    provider: Provider, subject: str, status: int
) -> None:
    guard = make_zitadel_dependency(
        domain=f"127.0.0.1:{provider.port}",
        client_id=CLIENT_ID,
        project_id=PROJECT_ID,
        issuer=provider.issuer,
        claims_check=lambda claims: claims.get("sub") == "admin",
    )
    options = {"dashboard_auth_dependency": guard, "zitadel_session_secret": SECRET}
    app, _ = guarded_app(options)
    provider.id_token_claims = {"sub": subject}
    async with asgi_client(app) as client:
        callback = await log_in(client)
    assert callback.status_code == status


async def test_shared_guard_serves_two_apps(provider: Provider) -> None:
    guard = make_zitadel_dependency(
        domain=f"127.0.0.1:{provider.port}",
        client_id=CLIENT_ID,
        project_id=PROJECT_ID,
        issuer=provider.issuer,
    )
    options = {"dashboard_auth_dependency": guard, "zitadel_session_secret": SECRET}
    first, _ = guarded_app(options)
    second, _ = guarded_app(options)
    async with asgi_client(first) as client:
        first_login = await log_in(client)
    async with asgi_client(second) as client:
        second_login = await log_in(client)
    assert first_login.status_code == 303
    assert second_login.status_code == 303


async def test_non_ascii_next_encoded(app_client: httpx.AsyncClient) -> None:
    callback = await log_in(app_client, "/flare/é?q=ü")
    assert callback.status_code == 303
    assert callback.headers["location"] == "/flare/%C3%A9?q=%C3%BC"
