"""A small OIDC provider on 127.0.0.1 that replaces Zitadel in the tests.

It serves discovery, a JWKS with two keys for rotation (and a switch that
makes it return 500), an authorize endpoint that redirects straight back with
a code, and a token endpoint that checks PKCE. It counts JWKS fetches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.servers import free_port

CLIENT_ID = "flare-client"
PROJECT_ID = "flare-project"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """The provider's state, which the tests read and switch directly."""

    def __init__(self) -> None:
        self.key_a = RSAKey.generate_key(
            2048, parameters={"kid": "key-a", "use": "sig"}
        )
        self.key_b = RSAKey.generate_key(
            2048, parameters={"kid": "key-b", "use": "sig"}
        )
        self.attacker_key = RSAKey.generate_key(2048, parameters={"kid": "key-evil"})
        # Small enough to embed as a header jwk within joserfc's 512-byte header limit.
        self.attacker_ec_key = ECKey.generate_key(
            "P-256", parameters={"kid": "ec-evil"}
        )
        self.port = free_port()
        self.server: uvicorn.Server | None = None
        self.reset()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.served = [self.key_a]
        self.jwks_fails = False
        self.jwks_fetches = 0
        self.attacker_fetches = 0
        self.token_requests: list[dict[str, str]] = []
        self.codes: dict[str, dict[str, str]] = {}
        self.id_token_claims: dict[str, Any] = {}

    # Tokens --------------------------------------------------------------

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": [PROJECT_ID, CLIENT_ID],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """Sign an RS256 token; a claim given as None is left out."""
        key = key or self.key_a
        full_header = {"alg": "RS256", "kid": key.kid, **(header or {})}
        return jwt.encode(full_header, self.claims(**claims), key, algorithms=["RS256"])

    def unsigned_token(self, header: dict[str, Any], **claims: Any) -> str:
        """Build a token with any header and an empty signature, as for alg none."""
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(self.claims(**claims)).encode())
        return f"{head}.{body}."

    def hmac_token(self, secret: bytes, **claims: Any) -> str:
        """Sign with HS256 and the given secret, keeping key A's kid."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key_a.kid}
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(self.claims(**claims)).encode())
        digest = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64url(digest)}"

    # Endpoints -----------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/oauth/v2/authorize",
                "token_endpoint": f"{self.issuer}/oauth/v2/token",
                "jwks_uri": f"{self.issuer}/oauth/v2/keys",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        if self.jwks_fails:
            return JSONResponse({"error": "down for the test"}, status_code=500)
        return JSONResponse(
            {"keys": [key.as_dict(private=False) for key in self.served]}
        )

    async def attacker_jwks(self, request: Request) -> Response:
        self.attacker_fetches += 1
        return JSONResponse({"keys": [self.attacker_key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if (
            params.get("client_id") != CLIENT_ID
            or params.get("response_type") != "code"
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if params.get("code_challenge_method") != "S256" or not params.get(
            "code_challenge"
        ):
            return JSONResponse({"error": "pkce_required"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(params)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    async def token_endpoint(self, request: Request) -> Response:
        form = {
            key: values[0]
            for key, values in parse_qs((await request.body()).decode()).items()
        }
        self.token_requests.append(form)
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        challenge = b64url(
            hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        )
        if challenge != grant["code_challenge"]:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "PKCE"}, 400
            )
        claims: dict[str, Any] = {
            "aud": [CLIENT_ID, PROJECT_ID],
            "azp": CLIENT_ID,
            "nonce": grant.get("nonce"),
        }
        claims.update(self.id_token_claims)
        return JSONResponse(
            {
                "access_token": self.token(),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.token(name="Ada Lovelace", **claims),
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/oauth/v2/keys", self.jwks),
                Route("/attacker/keys", self.attacker_jwks),
                Route("/oauth/v2/authorize", self.authorize),
                Route("/oauth/v2/token", self.token_endpoint, methods=["POST"]),
            ]
        )

    # Server --------------------------------------------------------------

    def start(self) -> Provider:
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        thread = threading.Thread(
            target=self.server.run, name="oidc-provider", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(
                    f"the OIDC provider did not start on port {self.port}"
                )
            time.sleep(0.02)
        self._thread = thread
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self._thread.join(timeout=10)
            self.server = None
