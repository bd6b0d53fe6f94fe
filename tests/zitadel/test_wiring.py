"""Auto-wiring of the zitadel plugin from options and FLARE_ZITADEL_* variables."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from flare_core import FlareConfigError, setup
from flare_zitadel import ZitadelGuard, make_zitadel_dependency
from tests.zitadel.conftest import asgi_client, bearer, guarded_app
from tests.zitadel.provider import CLIENT_ID, PROJECT_ID, Provider

REQUIRED = ("zitadel_domain", "zitadel_client_id", "zitadel_project_id")


def _required_values(provider: Provider) -> dict[str, Any]:
    return {
        "zitadel_domain": f"127.0.0.1:{provider.port}",
        "zitadel_client_id": CLIENT_ID,
        "zitadel_project_id": PROJECT_ID,
    }


async def test_env_wires_guard(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _required_values(provider).items():
        monkeypatch.setenv(f"FLARE_{name.upper()}", value)
    monkeypatch.setenv("FLARE_ZITADEL_ISSUER", provider.issuer)
    app, flare = guarded_app({})
    async with asgi_client(app) as client:
        accepted = await client.get("/flare/probe", headers=bearer(provider.token()))
        rejected = await client.get("/flare/probe")
    assert isinstance(flare.auth, ZitadelGuard)
    assert accepted.status_code == 200
    assert rejected.status_code == 401


def test_default_issuer_from_domain(provider: Provider) -> None:
    _, flare = guarded_app(_required_values(provider))
    assert isinstance(flare.auth, ZitadelGuard)
    assert flare.auth.verifier.issuer == f"https://127.0.0.1:{provider.port}"
    assert (
        flare.auth.verifier.jwks.url
        == f"https://127.0.0.1:{provider.port}/oauth/v2/keys"
    )


def test_options_reach_guard(provider: Provider) -> None:
    options = {
        **_required_values(provider),
        "zitadel_old_client_id": "old-client",
        "zitadel_old_project_id": "old-project",
        "zitadel_leeway_seconds": 5,
        "zitadel_jwks_ttl_seconds": 60,
    }
    _, flare = guarded_app(options)
    assert isinstance(flare.auth, ZitadelGuard)
    verifier = flare.auth.verifier
    assert verifier.audiences == (CLIENT_ID, PROJECT_ID, "old-client", "old-project")
    assert verifier.leeway_seconds == 5
    assert verifier.jwks.ttl_seconds == 60


def test_nothing_set_means_no_auth(provider: Provider) -> None:
    app = FastAPI()
    flare = setup(app, storage_backend="memory")
    assert flare.auth is None


@pytest.mark.parametrize("missing", REQUIRED)
def test_two_of_three_names_missing(
    provider: Provider, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in _required_values(provider).items():
        if name != missing:
            monkeypatch.setenv(f"FLARE_{name.upper()}", value)
    with pytest.raises(FlareConfigError) as caught:
        setup(FastAPI(), storage_backend="memory")
    assert caught.value.option == missing
    assert f"FLARE_{missing.upper()}" in str(caught.value)


def test_one_of_three_names_both_missing(provider: Provider) -> None:
    with pytest.raises(FlareConfigError) as caught:
        setup(
            FastAPI(), storage_backend="memory", zitadel_domain="example.zitadel.cloud"
        )
    assert "zitadel_client_id" in str(caught.value)
    assert "zitadel_project_id" in str(caught.value)


def test_short_session_secret_rejected(provider: Provider) -> None:
    options = {**_required_values(provider), "zitadel_session_secret": "short"}
    with pytest.raises(FlareConfigError) as caught:
        setup(FastAPI(), storage_backend="memory", **options)
    assert caught.value.option == "zitadel_session_secret"
    assert "short" not in str(caught.value)


def test_user_dependency_wins(provider: Provider) -> None:
    def allow_all() -> None:
        return None

    options = {**_required_values(provider), "dashboard_auth_dependency": allow_all}
    _, flare = guarded_app(options)
    assert flare.auth is allow_all


@pytest.mark.parametrize("empty", ["domain", "client_id", "project_id"])
def test_manual_wiring_rejects_empty(empty: str) -> None:
    options: dict[str, Any] = {
        "domain": "example.zitadel.cloud",
        "client_id": "c",
        "project_id": "p",
    }
    options[empty] = " "
    with pytest.raises(ValueError, match=empty):
        make_zitadel_dependency(**options)
