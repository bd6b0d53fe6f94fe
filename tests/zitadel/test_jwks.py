"""JWKS fetching: one shared fetch, rotation, unknown-kid floods and outages."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

import httpx
import pytest

from flare_zitadel import clear_jwks_cache
from tests.servers import free_port
from tests.zitadel.conftest import bearer
from tests.zitadel.provider import Provider

LOGGER = "flare_zitadel.jwks"


async def test_concurrent_first_requests_fetch_once(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    token = provider.token()
    responses = await asyncio.gather(
        *(client.get("/flare/probe", headers=bearer(token)) for _ in range(200))
    )
    assert {response.status_code for response in responses} == {200}
    assert provider.jwks_fetches == 1


async def test_cached_keys_not_refetched(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await client.get("/flare/probe", headers=bearer(provider.token()))
    assert provider.jwks_fetches == 1


async def test_rotation_refetches_once(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    warm = await client.get("/flare/probe", headers=bearer(provider.token()))
    provider.served = [provider.key_a, provider.key_b]
    rotated = await client.get(
        "/flare/probe", headers=bearer(provider.token(key=provider.key_b))
    )
    again = await client.get(
        "/flare/probe", headers=bearer(provider.token(key=provider.key_b))
    )
    assert warm.status_code == 200
    assert rotated.status_code == 200
    assert again.status_code == 200
    assert provider.jwks_fetches == 2


async def test_random_kid_flood_is_rate_limited(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    await client.get("/flare/probe", headers=bearer(provider.token()))
    statuses = set()
    for _ in range(200):
        token = provider.token(header={"kid": secrets.token_hex(8)})
        statuses.add(
            (await client.get("/flare/probe", headers=bearer(token))).status_code
        )
    assert statuses == {401}
    assert provider.jwks_fetches <= 3


async def test_concurrent_random_kids_rate_limited(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    await client.get("/flare/probe", headers=bearer(provider.token()))
    tokens = [provider.token(header={"kid": secrets.token_hex(8)}) for _ in range(200)]
    responses = await asyncio.gather(
        *(client.get("/flare/probe", headers=bearer(token)) for token in tokens)
    )
    assert {response.status_code for response in responses} == {401}
    assert provider.jwks_fetches <= 3


async def test_outage_keeps_cached_kid(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(jwks_ttl_seconds=0.05, jwks_refresh_cooldown_seconds=0)
    warm = await client.get("/flare/probe", headers=bearer(provider.token()))
    provider.jwks_fails = True
    await asyncio.sleep(0.1)  # let the cached key set go stale
    cached = await client.get("/flare/probe", headers=bearer(provider.token()))
    unknown = await client.get(
        "/flare/probe", headers=bearer(provider.token(key=provider.key_b))
    )
    assert warm.status_code == 200
    assert cached.status_code == 200
    assert unknown.status_code == 503
    assert "unreachable" in unknown.json()["detail"]
    assert provider.jwks_fetches >= 2


async def test_outage_unknown_kid_fresh_cache(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    await client.get("/flare/probe", headers=bearer(provider.token()))
    provider.jwks_fails = True
    unknown = await client.get(
        "/flare/probe", headers=bearer(provider.token(key=provider.key_b))
    )
    cached = await client.get("/flare/probe", headers=bearer(provider.token()))
    assert unknown.status_code in (401, 503)
    assert cached.status_code == 200


async def test_cold_outage_is_503(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    provider.jwks_fails = True
    response = await client.get("/flare/probe", headers=bearer(provider.token()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"


async def test_outage_logged_once(
    provider: Provider,
    make_client: Callable[..., httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(jwks_refresh_cooldown_seconds=0)
    provider.jwks_fails = True
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(5):
            await client.get("/flare/probe", headers=bearer(provider.token()))
        provider.jwks_fails = False
        recovered = await client.get("/flare/probe", headers=bearer(provider.token()))
    warnings = [
        r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]
    infos = [
        r for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO
    ]
    assert provider.jwks_fetches == 6
    assert recovered.status_code == 200
    assert len(warnings) == 1
    assert "HTTP 500" in warnings[0].getMessage()
    assert len(infos) == 1
    assert "after 5 failed fetches" in infos[0].getMessage()


async def test_unreachable_host_is_503(
    provider: Provider, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    client = make_client(issuer=f"http://127.0.0.1:{free_port()}")
    response = await client.get("/flare/probe", headers=bearer(provider.token()))
    assert response.status_code == 503


async def test_tokens_never_logged(
    provider: Provider, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = provider.token()
    bad = provider.token(aud="wrong-project")
    with caplog.at_level(logging.DEBUG, logger="flare_zitadel"):
        await client.get("/flare/probe", headers=bearer(good))
        await client.get("/flare/probe", headers=bearer(bad))
    assert caplog.records
    assert good not in caplog.text
    assert bad not in caplog.text


async def test_clear_jwks_cache_forces_fetch(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    await client.get("/flare/probe", headers=bearer(provider.token()))
    clear_jwks_cache()
    await client.get("/flare/probe", headers=bearer(provider.token()))
    assert provider.jwks_fetches == 2


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Respond like an HTTP server that sends its body one byte at a time."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n")
    try:
        for _ in range(400):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def test_trickling_server_times_out() -> None:
    from flare_zitadel.jwks import JWKSCache, JWKSUnavailable

    port = free_port()
    server = await asyncio.start_server(_trickle, "127.0.0.1", port)
    cache = JWKSCache(f"http://127.0.0.1:{port}/oauth/v2/keys", timeout_seconds=0.5)
    try:
        # Without a deadline on the whole fetch this would take 40 s; the
        # outer timeout only keeps a regression from hanging the suite.
        async with asyncio.timeout(20):
            with pytest.raises(JWKSUnavailable):
                await cache.get_key("kid-1")
    finally:
        server.close()
        await server.wait_closed()
