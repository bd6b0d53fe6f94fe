"""Fixtures: the local OIDC provider and apps guarded by flare-zitadel."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from flare_core import Flare, setup
from flare_zitadel import clear_jwks_cache, make_zitadel_dependency
from tests.zitadel.provider import CLIENT_ID, PROJECT_ID, Provider

# authlib 1.9 warns once, on import, that it prefers httpx2, and installs an
# "always" filter for its warnings. Importing it here, inside catch_warnings,
# records that one warning away and drops the filter again, so the suite's
# own filters decide about every later warning.
with warnings.catch_warnings(record=True):
    import authlib.integrations.starlette_client  # noqa: F401

ZITADEL_ENV = (
    "FLARE_ZITADEL_DOMAIN",
    "FLARE_ZITADEL_CLIENT_ID",
    "FLARE_ZITADEL_PROJECT_ID",
    "FLARE_ZITADEL_ISSUER",
    "FLARE_ZITADEL_SESSION_SECRET",
)


@pytest.fixture(scope="session")
def provider_server() -> Iterator[Provider]:
    server = Provider().start()
    yield server
    server.stop()


@pytest.fixture
def provider(provider_server: Provider, monkeypatch: pytest.MonkeyPatch) -> Provider:
    """The provider with key A served, no outage and zeroed counters."""
    provider_server.reset()
    clear_jwks_cache()
    for name in ZITADEL_ENV:
        monkeypatch.delenv(name, raising=False)
    return provider_server


def guarded_app(flare_options: dict[str, Any]) -> tuple[FastAPI, Flare]:
    """A real app set up by flare_core, with a probe route behind ``flare.auth``."""
    app = FastAPI()
    flare = setup(app, storage_backend="memory", **flare_options)

    @app.api_route(
        "/flare/probe", methods=["GET", "POST"], dependencies=[Depends(flare.auth)]
    )
    async def probe() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/flare/api/probe", dependencies=[Depends(flare.auth)])
    async def api_probe() -> dict[str, str]:
        return {"status": "ok"}

    return app, flare


@pytest.fixture
async def make_client(
    provider: Provider,
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Build a client for an app guarded by ``make_zitadel_dependency(**options)``."""
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> httpx.AsyncClient:
        options = {
            "domain": f"127.0.0.1:{provider.port}",
            "client_id": CLIENT_ID,
            "project_id": PROJECT_ID,
            "issuer": provider.issuer,
            **options,
        }
        guard = make_zitadel_dependency(**options)
        app, _ = guarded_app({"dashboard_auth_dependency": guard})
        client = asgi_client(app)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client for an app guarded with the default options."""
    return make_client()


def live_env(provider: Provider, session_secret: str) -> dict[str, str]:
    """The FLARE_ZITADEL_* variables that point a live app at the provider."""
    return {
        "FLARE_ZITADEL_DOMAIN": f"127.0.0.1:{provider.port}",
        "FLARE_ZITADEL_CLIENT_ID": CLIENT_ID,
        "FLARE_ZITADEL_PROJECT_ID": PROJECT_ID,
        "FLARE_ZITADEL_ISSUER": provider.issuer,
        "FLARE_ZITADEL_SESSION_SECRET": session_secret,
    }


def asgi_client(app: FastAPI, root_path: str = "") -> httpx.AsyncClient:
    """Build a client that calls ``app`` in process, as ``http://testserver``."""
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
