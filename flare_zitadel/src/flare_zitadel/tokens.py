"""Verification of Zitadel-issued JWTs with joserfc: RS256 only, keys from JWKS.

The key comes from the issuer's JWKS by the token's ``kid`` and nowhere else:
``jwk``, ``jku``, ``x5u`` and ``x5c`` header parameters are ignored, so a
token cannot bring its own key.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExceededSizeError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jws import JWSRegistry, extract_compact

from .jwks import JWKSCache

__all__ = ["ALGORITHMS", "MAX_TOKEN_BYTES", "InvalidToken", "TokenVerifier"]

# RS256 is the only accepted algorithm. Listing it alone rejects "none", every
# HS* (including HMAC keyed with the public key's PEM) and every algorithm the
# JWKS key was not made for.
# NOTE: Zitadel's web keys can also be RS384, RS512, ES256, ES384, ES512 or EdDSA
# (Zitadel docs, "OpenID Connect and OAuth2 web keys"); tokens of an instance
# configured that way are rejected.
ALGORITHMS = ("RS256",)
MAX_TOKEN_BYTES = 16_384

# Header parameters outside joserfc's registry are ignored rather than rejected.
# joserfc still rejects a token whose crit lists a parameter it does not know.
_REGISTRY = JWSRegistry(algorithms=list(ALGORITHMS), strict_check_header=False)


class InvalidToken(Exception):
    """A token failed verification; ``reason`` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenVerifier:
    """Check a JWT's signature, ``exp``, ``nbf``, ``iat``, ``iss`` and ``aud``.

    :param issuer: The exact expected ``iss`` value.
    :param audiences: ``aud`` (a string or a list) must contain one of these.
    :param jwks: The cache that supplies the issuer's keys.
    :param leeway_seconds: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        issuer: str,
        audiences: Collection[str],
        jwks: JWKSCache,
        leeway_seconds: float = 30,
    ) -> None:
        if not audiences:
            raise ValueError("TokenVerifier needs at least one accepted audience")
        self.issuer = issuer
        self.audiences = tuple(dict.fromkeys(audiences))
        self.jwks = jwks
        self.leeway_seconds = leeway_seconds

    async def verify(
        self, token: str, audiences: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Return the claims of a valid token.

        :param audiences: Overrides the accepted audiences for this call, as
            the browser login does to accept ID tokens for its client only.
        :raises InvalidToken: with a reason that never quotes the token.
        :raises JWKSUnavailable: when the key cannot be fetched.
        """
        kid = _read_kid(token)
        key = await self.jwks.get_key(kid)
        try:
            decoded = jwt.decode(
                token, key, algorithms=list(ALGORITHMS), registry=_REGISTRY
            )
        except BadSignatureError:
            raise InvalidToken("signature is invalid") from None
        except JoseError:
            raise InvalidToken("token is malformed") from None
        self._check_claims(decoded.claims, audiences or self.audiences)
        return decoded.claims

    def _check_claims(self, claims: dict[str, Any], audiences: Collection[str]) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=int(self.leeway_seconds),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": list(audiences)},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("token has expired") from None
        except MissingClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim} claim") from None
        except InvalidClaimError as exc:
            raise InvalidToken(
                _CLAIM_REASONS.get(exc.claim, "a claim is invalid")
            ) from None
        except ClaimError:
            raise InvalidToken("a claim is invalid") from None


_CLAIM_REASONS = {
    "iss": "issuer is not accepted",
    "aud": "audience is not accepted",
    "nbf": "token is not valid yet",
    "iat": "token is issued in the future",
    "exp": "expiry is not a number",
}


def _read_kid(token: str) -> str:
    """Check the unverified header and return its ``kid``."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    try:
        header = extract_compact(token.encode("ascii"), registry=_REGISTRY).headers()
    except ExceededSizeError:
        raise InvalidToken("token header or signature is too large") from None
    except (JoseError, ValueError, UnicodeError):
        raise InvalidToken("token is malformed") from None
    if header.get("alg") not in ALGORITHMS:
        raise InvalidToken("algorithm is not RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token header has no kid")
    return kid
