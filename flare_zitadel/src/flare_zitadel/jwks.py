"""Zitadel's signing keys (JWKS), fetched with httpx and cached in memory.

One ``JWKSCache`` serves every request of a process. Concurrent requests share
a single in-flight fetch, so a cold start with many requests fetches once. A
token whose ``kid`` is not cached triggers one refresh. Such refreshes run at
most once per cooldown, so a flood of made-up key ids cannot make the app
fetch more often than that.

During an outage, keys fetched earlier keep validating tokens even after their
TTL, and the outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

__all__ = ["JWKSCache", "JWKSUnavailable", "UnknownKeyId", "clear_jwks_cache"]

logger = logging.getLogger(__name__)

# Every cache ever built, so that clear_jwks_cache() can reach them all.
_CACHES: weakref.WeakSet[JWKSCache] = weakref.WeakSet()


class JWKSUnavailable(Exception):
    """The key set could not be fetched and no cached key matches the token."""


class UnknownKeyId(Exception):
    """The key set, freshly fetched or within its cooldown, has no such ``kid``."""


class JWKSCache:
    """RSA signature keys of one issuer, by ``kid``.

    :param url: The JWKS endpoint, ``{issuer}/oauth/v2/keys`` for Zitadel.
    :param ttl_seconds: How long a fetched key set counts as fresh.
    :param refresh_cooldown_seconds: Minimum time between two refreshes that
        an unknown ``kid`` triggers, and between retries after a failed fetch.
    :param timeout_seconds: Timeout of one HTTP fetch.
    :param clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 300,
        refresh_cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self.refresh_cooldown_seconds = refresh_cooldown_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        # An asyncio.Lock binds to the first event loop that waits on it, and
        # one process may run several loops (test clients, worker threads).
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Lock
        ] = weakref.WeakKeyDictionary()
        self.clear()
        _CACHES.add(self)

    def clear(self) -> None:
        """Forget every key and every timestamp, as if never fetched."""
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at: float | None = None
        self._forced_at: float | None = None
        self._failed_at: float | None = None
        self._failures = 0
        self._attempts = 0

    async def get_key(self, kid: str) -> RSAKey:
        """Return the key for ``kid``, fetching the key set when needed.

        :raises UnknownKeyId: when the key set has no key with this id.
        :raises JWKSUnavailable: when a needed fetch failed and no cached key
            has this id.
        """
        now = self._clock()
        fresh = (
            self._fetched_at is not None and now - self._fetched_at < self.ttl_seconds
        )
        key = self._keys.get(kid)
        if fresh and key is not None:
            return key
        if fresh and self._recent(self._forced_at, now):
            # Within the cooldown: only wait for a refresh already running.
            await self._wait_for_refresh()
        elif fresh:
            self._forced_at = now
            await self._refresh(self._attempts)
        elif not self._recent(self._failed_at, now):
            await self._refresh(self._attempts)

        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._failed_at is not None:
            raise JWKSUnavailable(self.url)
        raise UnknownKeyId(kid)

    def _recent(self, moment: float | None, now: float) -> bool:
        return moment is not None and now - moment < self.refresh_cooldown_seconds

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _wait_for_refresh(self) -> None:
        lock = self._lock()
        if lock.locked():
            async with lock:
                pass

    async def _refresh(self, seen_attempts: int) -> None:
        """Fetch the key set unless a fetch ended while this request waited."""
        async with self._lock():
            if self._attempts != seen_attempts:
                return
            try:
                keys = await self._fetch()
            except JWKSFetchError as exc:
                self._attempts += 1
                self._failed(exc)
                return
            # Counted once the fetch ends, so requests that arrived during it
            # saw the old count and return without fetching again. A cancelled
            # fetch is not counted, and the next waiter fetches instead.
            self._attempts += 1
            self._succeeded(keys)

    def _failed(self, exc: JWKSFetchError) -> None:
        self._failed_at = self._clock()
        self._failures += 1
        if self._failures == 1:
            logger.warning(
                "Zitadel JWKS at %s is unreachable: %s. Cached keys keep "
                "validating tokens; tokens signed by other keys get 503 until it "
                "is back. Retries run at most every %g s and are not logged.",
                self.url,
                exc,
                self.refresh_cooldown_seconds,
            )

    def _succeeded(self, keys: dict[str, RSAKey]) -> None:
        if self._failures:
            logger.info(
                "Zitadel JWKS at %s is reachable again after %d failed fetches",
                self.url,
                self._failures,
            )
        self._keys = keys
        self._fetched_at = self._clock()
        self._failed_at = None
        self._failures = 0
        logger.debug("Fetched %d signing keys from %s", len(keys), self.url)

    async def _fetch(self) -> dict[str, RSAKey]:
        # httpx's timeout bounds each connect and read, so a server that
        # trickles bytes could hold the fetch far longer; asyncio.timeout
        # bounds the whole fetch.
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
                    response = await client.get(
                        self.url, headers={"Accept": "application/json"}
                    )
        except httpx.HTTPError as exc:
            raise JWKSFetchError(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError:
            raise JWKSFetchError(
                f"no complete response within {self.timeout_seconds} s"
            ) from None
        if response.status_code != 200:
            raise JWKSFetchError(f"HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise JWKSFetchError("response is not JSON") from exc
        return parse_key_set(document)


class JWKSFetchError(Exception):
    """One fetch of the key set failed; the message gives the reason."""


def parse_key_set(document: Any) -> dict[str, RSAKey]:
    """Import the RS256 signature keys of a JWKS document, by ``kid``.

    Keys of other types, of other uses or algorithms, and keys without a
    ``kid`` are skipped, so they can never verify a token.

    :raises JWKSFetchError: when the document has no usable key.
    """
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JWKSFetchError("response has no 'keys' list")
    keys: dict[str, RSAKey] = {}
    for entry in entries:
        if not _is_rs256_signature_key(entry):
            continue
        public = {
            name: entry[name] for name in ("kty", "n", "e", "kid") if name in entry
        }
        try:
            keys[entry["kid"]] = RSAKey.import_key(public)
        except (JoseError, ValueError, TypeError):
            logger.warning(
                "Skipped the malformed JWKS key %r from Zitadel", entry["kid"]
            )
    if not keys:
        raise JWKSFetchError("response contains no RSA signature key with a kid")
    return keys


def _is_rs256_signature_key(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("kty") == "RSA"
        and isinstance(entry.get("kid"), str)
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", "RS256") == "RS256"
    )


def clear_jwks_cache() -> None:
    """Forget the cached keys of every Zitadel dependency in this process."""
    for cache in list(_CACHES):
        cache.clear()
