"""Login cookies are stateless: two uvicorn worker processes accept each other's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.servers import UvicornServer
from tests.zitadel.conftest import bearer, live_env
from tests.zitadel.provider import Provider

ROOT = Path(__file__).resolve().parents[2]
SECRET = "workers-session-secret-0123456789-abcdefgh"


def test_two_workers_share_login(
    provider: Provider, uvicorn_server: Callable[..., UvicornServer]
) -> None:
    env = live_env(provider, SECRET)
    server = uvicorn_server("tests.zitadel.live_app:app", env=env, cwd=ROOT, workers=2)

    # A fresh connection per request, so that each request may reach either worker.
    def get(url: str, cookies: httpx.Cookies, **kwargs: object) -> httpx.Response:
        with httpx.Client(cookies=cookies) as client:
            response = client.get(url, **kwargs)  # type: ignore[arg-type]
            cookies.update(response.cookies)
            return response

    cookies = httpx.Cookies()
    start = get(f"{server.url}/flare/auth/login", cookies)
    authorize = httpx.get(start.headers["location"])
    callback = urlsplit(authorize.headers["location"])
    done = get(f"{server.url}{callback.path}?{callback.query}", cookies)
    statuses = {
        get(f"{server.url}/flare/api/logs", cookies).status_code for _ in range(20)
    }
    with_token = get(
        f"{server.url}/flare/api/logs",
        httpx.Cookies(),
        headers=bearer(provider.token()),
    )

    assert start.status_code == 302
    assert done.status_code == 303, done.text
    assert statuses == {200}
    assert with_token.status_code == 200
