"""Bearer token checks of the Zitadel guard, against the local provider's keys."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt

from tests.zitadel.conftest import bearer
from tests.zitadel.provider import CLIENT_ID, PROJECT_ID, Provider, b64url


def _valid(provider: Provider) -> str:
    return provider.token()


def _alg_none(provider: Provider) -> str:
    return provider.unsigned_token({"alg": "none", "kid": provider.key_a.kid})


def _hs256_with_public_pem(provider: Provider) -> str:
    pem = provider.key_a.as_pem(private=False)
    return provider.hmac_token(pem)


def _embedded_rsa_jwk(provider: Provider) -> str:
    attacker = provider.attacker_key
    header = {"jwk": attacker.as_dict(private=False)}
    return provider.token(key=attacker, header=header)


def _embedded_jwk_known_kid(provider: Provider) -> str:
    """Sign with the attacker's key, name key A's kid and embed a small jwk."""
    header: dict[str, Any] = {"jwk": provider.attacker_ec_key.as_dict(private=False)}
    header["kid"] = provider.key_a.kid
    return provider.token(key=provider.attacker_key, header=header)


def _es256_embedded_jwk(provider: Provider) -> str:
    attacker = provider.attacker_ec_key
    header = {
        "alg": "ES256",
        "kid": attacker.kid,
        "jwk": attacker.as_dict(private=False),
    }
    return jwt.encode(header, provider.claims(), attacker, algorithms=["ES256"])


def _jku(provider: Provider) -> str:
    header = {"jku": f"{provider.issuer}/attacker/keys"}
    return provider.token(key=provider.attacker_key, header=header)


def _claims(**claims: Any) -> Callable[[Provider], str]:
    def build(provider: Provider) -> str:
        return provider.token(**claims)

    return build


def _claims_now(**offsets: int) -> Callable[[Provider], str]:
    """Build a token whose time claims are offsets from now, taken at build time."""

    def build(provider: Provider) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            name: now + offset for name, offset in offsets.items()
        }
        return provider.token(**claims)

    return build


# (id, token builder, expected status, fragment of the 401 detail)
CASES: list[tuple[str, Callable[[Provider], str], int, str]] = [
    ("valid", _valid, 200, ""),
    ("alg-none", _alg_none, 401, "not RS256"),
    ("hs256-public-pem", _hs256_with_public_pem, 401, "not RS256"),
    ("es256-embedded-jwk", _es256_embedded_jwk, 401, "not RS256"),
    ("embedded-rsa-jwk", _embedded_rsa_jwk, 401, "too large"),
    ("embedded-jwk-known-kid", _embedded_jwk_known_kid, 401, "signature is invalid"),
    ("jku-header", _jku, 401, "signing key is unknown"),
    ("wrong-iss", _claims(iss="https://evil.example"), 401, "issuer"),
    ("iss-trailing-slash", lambda p: p.token(iss=p.issuer + "/"), 401, "issuer"),
    ("no-iss", _claims(iss=None), 401, "lacks the iss"),
    ("no-aud", _claims(aud=None), 401, "lacks the aud"),
    ("aud-wrong-project", _claims(aud="wrong-project"), 401, "audience"),
    ("aud-empty-list", _claims(aud=[]), 401, "audience"),
    ("aud-project-string", _claims(aud=PROJECT_ID), 200, ""),
    ("aud-client-string", _claims(aud=CLIENT_ID), 200, ""),
    ("aud-project-other-client", _claims(aud=[PROJECT_ID, "other-client"]), 200, ""),
    ("azp-other-client-ignored", _claims(azp="other-client"), 200, ""),
    ("aud-old-project-unset", _claims(aud="old-project"), 401, "audience"),
    ("no-exp", _claims(exp=None), 401, "lacks the exp"),
    ("exp-10s-ago-leeway", _claims_now(exp=-10), 200, ""),
    ("exp-120s-ago", _claims_now(exp=-120), 401, "expired"),
    ("iat-5s-ahead", _claims_now(iat=5), 200, ""),
    ("iat-120s-ahead", _claims_now(iat=120), 401, "future"),
    ("nbf-120s-ahead", _claims_now(nbf=120), 401, "not valid yet"),
    ("exp-not-number", _claims(exp="tomorrow"), 401, "not a number"),
    ("signed-by-key-b-unserved", lambda p: p.token(key=p.key_b), 401, "key is unknown"),
    ("not-a-jwt", lambda p: "abc.def", 401, "malformed"),
    ("garbage-segments", lambda p: "a.b.c", 401, "malformed"),
    ("tampered-payload", lambda p: _tampered(p), 401, "signature is invalid"),
]
REJECTED = [case for case in CASES if case[2] == 401]


def _tampered(provider: Provider) -> str:
    """Keep key A's valid signature but swap in a payload with another subject."""
    head, _, signature = provider.token().split(".")
    body = b64url(json.dumps(provider.claims(sub="admin")).encode())
    return f"{head}.{body}.{signature}"


@pytest.mark.parametrize(
    ("build", "status", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bearer_token_case(
    provider: Provider,
    client: httpx.AsyncClient,
    build: Callable[[Provider], str],
    status: int,
    reason: str,
) -> None:
    token = build(provider)
    response = await client.get("/flare/probe", headers=bearer(token))
    assert response.status_code == status, response.text
    if status == 401:
        assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    "build", [case[1] for case in REJECTED], ids=[case[0] for case in REJECTED]
)
async def test_rejection_body_is_safe(
    provider: Provider, client: httpx.AsyncClient, build: Callable[[Provider], str]
) -> None:
    token = build(provider)
    response = await client.get("/flare/probe", headers=bearer(token))
    body = response.text
    modulus = str(provider.key_a.as_dict(private=False)["n"])
    assert token not in body
    for segment in token.split("."):
        if len(segment) >= 8:
            assert segment not in body
    assert modulus[:40] not in body
    assert "BEGIN" not in body
    assert "Traceback" not in body
    assert response.headers["www-authenticate"].startswith('Bearer realm="flare"')


async def test_jku_never_fetched(provider: Provider, client: httpx.AsyncClient) -> None:
    await client.get("/flare/probe", headers=bearer(_jku(provider)))
    assert provider.attacker_fetches == 0


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "Token abc"],
    ids=[
        "absent",
        "empty",
        "scheme-only",
        "scheme-space",
        "basic",
        "two-tokens",
        "other-scheme",
    ],
)
async def test_missing_or_malformed_header(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.get("/flare/probe", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_reason_in_body(provider: Provider, client: httpx.AsyncClient) -> None:
    token = provider.token(exp=int(time.time()) - 3600)
    response = await client.get("/flare/probe", headers=bearer(token))
    assert response.json() == {"detail": "Invalid token: token has expired"}


async def test_old_project_accepted_while_set(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(old_project_id="old-project", old_client_id="old-client")
    for audience in ("old-project", "old-client", ["old-project", "someone-else"]):
        response = await client.get(
            "/flare/probe", headers=bearer(provider.token(aud=audience))
        )
        assert response.status_code == 200, audience


async def test_extra_audience_accepted(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(extra_audiences=["api-gateway"])
    response = await client.get(
        "/flare/probe", headers=bearer(provider.token(aud="api-gateway"))
    )
    assert response.status_code == 200


async def test_zero_leeway_rejects_recent_expiry(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(leeway_seconds=0)
    token = provider.token(exp=int(time.time()) - 10)
    response = await client.get("/flare/probe", headers=bearer(token))
    assert response.status_code == 401


async def test_claims_check_false_is_403(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(claims_check=lambda claims: claims.get("sub") == "admin")
    denied = await client.get("/flare/probe", headers=bearer(provider.token()))
    allowed = await client.get(
        "/flare/probe", headers=bearer(provider.token(sub="admin"))
    )
    assert denied.status_code == 403
    assert allowed.status_code == 200


async def test_async_claims_check(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    async def only_admin(claims: dict[str, Any]) -> bool:
        return claims.get("sub") == "admin"

    client = make_client(claims_check=only_admin)
    response = await client.get("/flare/probe", headers=bearer(provider.token()))
    assert response.status_code == 403


async def test_oversized_token_rejected(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    token = provider.token(padding="x" * 20_000)
    response = await client.get("/flare/probe", headers=bearer(token))
    assert response.status_code == 401
    assert provider.jwks_fetches == 0
