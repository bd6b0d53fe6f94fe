"""The HTTP Basic example plugin in examples/, registered through setup(plugins=...)."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi import Depends, FastAPI

from flare_core import FlareConfigError, setup
from tests.zitadel.conftest import asgi_client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "auth_basic_plugin.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auth_basic_plugin", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("DASHBOARD_USER", "admin")
    monkeypatch.setenv("DASHBOARD_PASSWORD", "correct horse battery staple")
    app = FastAPI()
    flare = setup(app, storage_backend="memory", plugins=[load_example()])

    @app.get("/flare/api/probe", dependencies=[Depends(flare.auth)])
    async def probe() -> dict[str, str]:
        return {"status": "ok"}

    async with asgi_client(app) as http:
        yield http


async def test_right_password_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/flare/api/probe", headers=basic("admin", "correct horse battery staple")
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin", "wrong"),
        basic("root", "correct horse battery staple"),
        basic("admin", ""),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
    ],
    ids=[
        "none",
        "wrong-password",
        "wrong-user",
        "empty-password",
        "bearer",
        "malformed",
    ],
)
async def test_wrong_credentials_rejected(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/flare/api/probe", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


def test_missing_variables_fail_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHBOARD_USER", raising=False)
    monkeypatch.setenv("DASHBOARD_PASSWORD", "secret")
    with pytest.raises(FlareConfigError, match="DASHBOARD_USER"):
        setup(FastAPI(), storage_backend="memory", plugins=[load_example()])
