"""The guard on flare-dashboard's own routes: the page and the JSON API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from flare_core import setup
from tests.zitadel.conftest import asgi_client, bearer
from tests.zitadel.provider import Provider
from tests.zitadel.test_login import log_in, login_options


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app), asgi_client(app) as client:
        yield client


@pytest.fixture
async def client(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    setup(app, storage_backend="memory", **login_options(provider))
    async for http in _client(app):
        yield http


@pytest.fixture
async def bearer_only_client(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    options = login_options(provider)
    del options["zitadel_session_secret"]
    app = FastAPI()
    setup(app, storage_backend="memory", **options)
    async for http in _client(app):
        yield http


async def test_page_redirects_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/flare")
    assert response.status_code == 303
    assert response.headers["location"] == "/flare/auth/login?next=/flare"


async def test_api_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/flare/api/logs")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_api_accepts_bearer(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    response = await client.get("/flare/api/logs", headers=bearer(provider.token()))
    assert response.status_code == 200


async def test_api_rejects_wrong_audience(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    token = provider.token(aud="wrong-project")
    response = await client.get("/flare/api/logs", headers=bearer(token))
    assert response.status_code == 401


async def test_session_opens_page_and_api(client: httpx.AsyncClient) -> None:
    callback = await log_in(client, "/flare")
    page = await client.get("/flare")
    api = await client.get("/flare/api/logs")
    assert callback.status_code == 303
    assert page.status_code == 200
    assert api.status_code == 200


async def test_without_secret_page_is_401(
    bearer_only_client: httpx.AsyncClient,
) -> None:
    page = await bearer_only_client.get("/flare")
    login = await bearer_only_client.get("/flare/auth/login")
    assert page.status_code == 401
    assert login.status_code == 404


async def test_app_outside_dashboard_untouched(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
