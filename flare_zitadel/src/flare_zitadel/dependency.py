"""The FastAPI dependency that guards the dashboard with Zitadel tokens."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request

from .jwks import JWKSCache, JWKSUnavailable, UnknownKeyId
from .tokens import InvalidToken, TokenVerifier

if TYPE_CHECKING:
    from .login import BrowserLogin

__all__ = ["ClaimsCheck", "ZitadelGuard", "make_zitadel_dependency"]

logger = logging.getLogger(__name__)

ClaimsCheck = Callable[[dict[str, Any]], "bool | Awaitable[bool]"]

REALM = "flare"


class ZitadelGuard:
    """A dependency that accepts a valid Zitadel bearer token or login session.

    It returns the token's claims (for a session, the few claims the session
    keeps) and also stores them on ``request.state.zitadel_claims``. A
    rejected request gets 401 (no or invalid credentials), 403 (the claims
    check returned False) or 503 (Zitadel's keys are unreachable).
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        client_id: str,
        claims_check: ClaimsCheck | None = None,
    ) -> None:
        self.verifier = verifier
        self.client_id = client_id
        self.claims_check = claims_check
        # Set by the plugin's flare_mount when browser login is configured.
        self.login: BrowserLogin | None = None

    async def __call__(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization")
        if header is not None:
            claims = await self.verify_bearer(header)
            await self.check_claims(claims)
            request.state.zitadel_claims = claims
            return claims
        session = self.login.session_claims(request) if self.login else None
        if session is None:
            raise self._no_credentials(request)
        request.state.zitadel_claims = session
        return session

    async def verify_bearer(self, header: str) -> dict[str, Any]:
        """Return the claims of the token in an ``Authorization`` header value."""
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise _unauthorized(
                "Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        return await self.verify_token(token)

    async def verify_token(
        self, token: str, audiences: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Return a token's claims, or raise the ``HTTPException`` to send."""
        try:
            return await self.verifier.verify(token, tuple(audiences or ()))
        except InvalidToken as exc:
            logger.debug("Rejected a Zitadel token: %s", exc.reason)
            raise _unauthorized(
                f"Invalid token: {exc.reason}", "invalid_token"
            ) from None
        except UnknownKeyId:
            logger.debug("Rejected a Zitadel token signed by an unknown key")
            raise _unauthorized(
                "Invalid token: signing key is unknown", "invalid_token"
            ) from None
        except JWKSUnavailable:
            raise HTTPException(
                status_code=503,
                detail=(
                    "Cannot verify the token: Zitadel's signing keys are unreachable "
                    f"at {self.verifier.jwks.url}. Try again later."
                ),
                headers={"Retry-After": "30"},
            ) from None

    async def check_claims(self, claims: dict[str, Any]) -> None:
        """Run the claims check; a False result becomes 403."""
        if self.claims_check is None:
            return
        allowed = self.claims_check(claims)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise HTTPException(
                status_code=403,
                detail="The token is valid but not allowed to see Flare",
            )

    def _no_credentials(self, request: Request) -> HTTPException:
        if self.login is not None:
            redirect = self.login.login_redirect(request)
            if redirect is not None:
                return redirect
        return _unauthorized("Missing bearer token in the Authorization header", None)


def _unauthorized(detail: str, error: str | None) -> HTTPException:
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}"'
    return HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def make_zitadel_dependency(
    *,
    domain: str,
    client_id: str,
    project_id: str,
    issuer: str | None = None,
    extra_audiences: Iterable[str] = (),
    old_client_id: str | None = None,
    old_project_id: str | None = None,
    leeway_seconds: float = 30,
    claims_check: ClaimsCheck | None = None,
    jwks_ttl_seconds: float = 300,
    jwks_refresh_cooldown_seconds: float = 30,
) -> ZitadelGuard:
    """Build a dependency that accepts Zitadel-issued JWT access tokens.

    Pass it as ``FlareConfig(dashboard_auth_dependency=...)``, or use it on
    routes of your own.

    :param domain: The instance's domain, such as ``my-org.zitadel.cloud``.
    :param client_id: The dashboard's client id; an accepted audience.
    :param project_id: The project's id; an accepted audience.
    :param issuer: The exact ``iss`` of tokens; defaults to ``https://{domain}``.
    :param extra_audiences: More accepted ``aud`` values.
    :param old_client_id: A previous client id, accepted while set.
    :param old_project_id: A previous project id, accepted while set.
    :param leeway_seconds: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    :param claims_check: Called with the verified claims; returning False
        (or an awaitable of False) rejects the request with 403.
    :param jwks_ttl_seconds: How long fetched signing keys count as fresh.
    :param jwks_refresh_cooldown_seconds: Minimum time between two key
        refreshes caused by unknown key ids, and between retries in an outage.
    """
    for name, value in (
        ("domain", domain),
        ("client_id", client_id),
        ("project_id", project_id),
    ):
        if not value or not value.strip():
            raise ValueError(
                f"make_zitadel_dependency() needs a non-empty {name}, got {value!r}"
            )
    issuer = (issuer or f"https://{domain.strip()}").rstrip("/")
    audiences = [client_id, project_id, *extra_audiences]
    audiences += [old for old in (old_client_id, old_project_id) if old]
    jwks = JWKSCache(
        f"{issuer}/oauth/v2/keys",
        ttl_seconds=jwks_ttl_seconds,
        refresh_cooldown_seconds=jwks_refresh_cooldown_seconds,
    )
    verifier = TokenVerifier(issuer, audiences, jwks, leeway_seconds)
    return ZitadelGuard(verifier, client_id, claims_check)
