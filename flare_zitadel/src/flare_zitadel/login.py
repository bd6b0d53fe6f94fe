"""Browser login to the dashboard: OIDC authorization code flow with PKCE.

A page request without credentials is redirected to ``{dashboard}/auth/login``,
which sends the browser to Zitadel. Zitadel returns it to
``{dashboard}/auth/callback`` with a code; the callback redeems the code,
verifies the ID token and sets a session cookie signed with itsdangerous.
Every worker process that shares ``zitadel_session_secret`` accepts it.

Nothing is kept on the server. The login state (OAuth ``state``, PKCE
verifier, nonce and return address) travels in a second signed cookie that is
limited to ``{dashboard}/auth``, so the host app's own session, if it has one,
is never touched.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from .dependency import ZitadelGuard

if TYPE_CHECKING:
    from authlib.integrations.starlette_client import StarletteOAuth2App

__all__ = ["MIN_SECRET_CHARS", "SESSION_COOKIE", "STATE_COOKIE", "BrowserLogin"]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "flare_session"
STATE_COOKIE = "flare_login"
STATE_MAX_AGE_SECONDS = 600
MIN_SECRET_CHARS = 32
SCOPES = "openid profile email"
# Characters a redirect target keeps as they are: RFC 3986 reserved and
# unreserved characters, plus "%" for escapes already present.
URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"
# Claims copied from the ID token into the session cookie.
SESSION_CLAIMS = ("sub", "name", "preferred_username", "email")

# Maximum time a login waits for Zitadel's discovery or token endpoint.
PROVIDER_TIMEOUT_SECONDS = 10.0


class BrowserLogin:
    """The login, callback and logout routes and the session cookie they set.

    :param guard: The dependency whose verifier checks ID tokens and whose
        claims check, if any, applies to the person logging in.
    :param dashboard_path: The dashboard's path, such as ``/flare``.
    :param session_secret: Signs both cookies; at least 32 characters.
    :param client_secret: Zitadel app's secret; None for a PKCE-only app.
    :param session_max_age_seconds: Lifetime of the session cookie.
    """

    def __init__(
        self,
        guard: ZitadelGuard,
        *,
        dashboard_path: str,
        session_secret: str,
        client_secret: str | None = None,
        session_max_age_seconds: int = 8 * 3600,
    ) -> None:
        if len(session_secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"The Zitadel session secret has {len(session_secret)} characters, but "
                f"it needs at least {MIN_SECRET_CHARS}. Generate one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self.guard = guard
        self.dashboard_path = dashboard_path.rstrip("/")
        self.auth_path = f"{self.dashboard_path}/auth"
        self.session_max_age_seconds = session_max_age_seconds
        self._sessions = URLSafeTimedSerializer(
            session_secret, salt="flare-zitadel-session"
        )
        self._states = URLSafeTimedSerializer(
            session_secret, salt="flare-zitadel-login"
        )
        self._client = _register_client(guard, client_secret)
        guard.login = self

    # Used by the guard -----------------------------------------------------

    def session_claims(self, request: Request) -> dict[str, Any] | None:
        """Return the claims of a valid session cookie, or None."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._sessions.loads(raw, max_age=self.session_max_age_seconds)
        except BadData:
            return None
        if not isinstance(data, dict) or data.get("aud") != self.guard.client_id:
            return None
        return data

    def login_redirect(self, request: Request) -> HTTPException | None:
        """Return a redirect to the login for a dashboard page, else None.

        API calls, the auth routes and methods other than GET and HEAD get
        None, so the guard rejects them with 401.
        """
        path = _app_path(request)
        api = f"{self.dashboard_path}/api"
        if request.method not in ("GET", "HEAD") or not _under(
            path, self.dashboard_path
        ):
            return None
        if _under(path, api) or _under(path, self.auth_path):
            return None
        target = path + (f"?{request.url.query}" if request.url.query else "")
        location = (
            f"{_root(request)}{self.auth_path}/login?next={quote(target, safe='/')}"
        )
        return HTTPException(
            status_code=303, detail="Login required", headers={"Location": location}
        )

    # Routes ----------------------------------------------------------------

    def router(self) -> APIRouter:
        """Build the routes under ``{dashboard}/auth``; they take no auth dependency."""
        router = APIRouter(prefix=self.auth_path, include_in_schema=False)
        router.add_api_route("/login", self.login, methods=["GET"])
        router.add_api_route("/callback", self.callback, methods=["GET"])
        router.add_api_route("/logout", self.logout, methods=["GET", "POST"])
        return router

    async def login(
        self, request: Request, next_path: str = Query("", alias="next")
    ) -> Response:
        """Send the browser to Zitadel, remembering the state in a signed cookie."""
        target = self.safe_next(next_path)
        redirect_uri = f"{_origin(request)}{self.auth_path}/callback"
        try:
            # Bounds discovery as a whole: httpx's own timeout bounds each read.
            async with asyncio.timeout(PROVIDER_TIMEOUT_SECONDS):
                authorization = await self._client.create_authorization_url(
                    redirect_uri
                )
        except Exception as exc:  # noqa: BLE001 - authlib raises httpx or httpx2 errors
            logger.warning("Zitadel login could not start (discovery failed): %s", exc)
            raise HTTPException(
                status_code=503,
                detail="Cannot reach Zitadel to start the login. Try again later.",
            ) from None
        state = {
            "state": authorization["state"],
            "code_verifier": authorization["code_verifier"],
            "nonce": authorization["nonce"],
            "redirect_uri": redirect_uri,
            "next": target,
        }
        response = RedirectResponse(authorization["url"], status_code=302)
        self._set_cookie(
            response,
            request,
            STATE_COOKIE,
            self._states.dumps(state),
            max_age=STATE_MAX_AGE_SECONDS,
            path=_root(request) + self.auth_path,
        )
        return response

    async def callback(self, request: Request) -> Response:
        """Redeem the code, verify the ID token and set the session cookie."""
        state = self._read_state(request)
        token = await self._redeem_code(request, state)
        claims = await self.guard.verify_token(token, audiences=(self.guard.client_id,))
        self._check_id_token(claims, state["nonce"])
        await self.guard.check_claims(claims)

        session = {name: claims[name] for name in SESSION_CLAIMS if name in claims}
        session["aud"] = self.guard.client_id
        logger.info("Dashboard login of Zitadel user %s", session.get("sub"))
        target = self.safe_next(state.get("next", ""))
        # Percent-encode what is not URL-safe ASCII, such as a decoded "é",
        # because header values must be Latin-1; escapes already present stay.
        location = _root(request) + quote(target, safe=URL_SAFE)
        response = RedirectResponse(location, status_code=303)
        self._set_cookie(
            response,
            request,
            SESSION_COOKIE,
            self._sessions.dumps(session),
            max_age=self.session_max_age_seconds,
            path=_root(request) + self.dashboard_path,
        )
        response.delete_cookie(STATE_COOKIE, path=_root(request) + self.auth_path)
        return response

    async def logout(self, request: Request) -> Response:
        """Clear the session cookie.

        NOTE: the Zitadel session stays open, so the next login may not ask
        for a password.
        """
        login = html.escape(f"{_root(request)}{self.auth_path}/login")
        page = (
            "<!doctype html><title>Signed out of Flare</title>"
            f'<p>You are signed out of Flare. <a href="{login}">Sign in again</a></p>'
        )
        response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
        response.delete_cookie(
            SESSION_COOKIE,
            path=_root(request) + self.dashboard_path,
            httponly=True,
            samesite="lax",
        )
        return response

    # Steps -----------------------------------------------------------------

    def safe_next(self, value: str) -> str:
        """Return ``value`` if it is a path inside the dashboard, else raise 400.

        Rejects absolute URLs, ``//host``, backslashes, control characters,
        ``.`` and ``..`` segments (also percent-encoded) and paths outside the
        dashboard, so the login cannot be used as an open redirect.
        """
        if not value:
            return self.dashboard_path
        parts = urlsplit(value)
        decoded = unquote(parts.path)
        segments = decoded.split("/")
        unsafe = (
            value != value.strip()
            or len(value) > 2048
            or any(ord(char) < 0x20 or ord(char) == 0x7F for char in unquote(value))
            or "\\" in unquote(value)
            or bool(parts.scheme or parts.netloc)
            or decoded.startswith("//")
            or "." in segments
            or ".." in segments
            or not _under(decoded, self.dashboard_path)
            or _under(decoded, self.auth_path)
        )
        if unsafe:
            raise HTTPException(
                status_code=400,
                detail=f"Invalid next: it must be a path under {self.dashboard_path}",
            )
        return value

    def _read_state(self, request: Request) -> dict[str, Any]:
        restart = f"start again at {self.auth_path}/login"
        error = request.query_params.get("error")
        if error:
            code = "".join(char for char in error[:64] if char.isalnum() or char == "_")
            logger.info("Zitadel returned the login error %r", code)
            raise HTTPException(
                status_code=401, detail=f"Zitadel login failed ({code}); {restart}"
            )
        try:
            state = self._states.loads(
                request.cookies.get(STATE_COOKIE, ""), max_age=STATE_MAX_AGE_SECONDS
            )
        except BadData:
            raise HTTPException(
                status_code=400, detail=f"Login state is missing or expired; {restart}"
            ) from None
        returned = request.query_params.get("state", "")
        if not secrets.compare_digest(returned.encode(), str(state["state"]).encode()):
            raise HTTPException(
                status_code=400, detail=f"Login state does not match; {restart}"
            )
        return dict(state)

    async def _redeem_code(self, request: Request, state: dict[str, Any]) -> str:
        code = request.query_params.get("code")
        if not code:
            raise HTTPException(
                status_code=400, detail="The callback has no code parameter"
            )
        try:
            async with asyncio.timeout(PROVIDER_TIMEOUT_SECONDS):
                token = await self._client.fetch_access_token(
                    redirect_uri=state["redirect_uri"],
                    code=code,
                    code_verifier=state["code_verifier"],
                )
        except Exception as exc:  # noqa: BLE001 - authlib raises httpx or httpx2 errors
            logger.warning("Zitadel rejected or failed the code exchange: %s", exc)
            raise HTTPException(
                status_code=502,
                detail="Zitadel did not accept the login code; try again",
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise HTTPException(status_code=502, detail="Zitadel returned no ID token")
        return id_token

    def _check_id_token(self, claims: dict[str, Any], nonce: str) -> None:
        returned = claims.get("nonce")
        if not isinstance(returned, str) or not secrets.compare_digest(
            returned.encode(), nonce.encode()
        ):
            raise HTTPException(
                status_code=401, detail="Invalid ID token: nonce does not match"
            )
        azp = claims.get("azp")
        if azp is not None and azp != self.guard.client_id:
            raise HTTPException(
                status_code=401,
                detail="Invalid ID token: issued to another client (azp)",
            )

    @staticmethod
    def _set_cookie(
        response: Response,
        request: Request,
        name: str,
        value: str,
        *,
        max_age: int,
        path: str,
    ) -> None:
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def _register_client(
    guard: ZitadelGuard, client_secret: str | None
) -> StarletteOAuth2App:
    # Imported here: authlib 1.9 warns on import when httpx2 is not installed,
    # and apps without browser login should not see that warning.
    from authlib.integrations.starlette_client import OAuth

    issuer = guard.verifier.issuer
    client_kwargs: dict[str, Any] = {"scope": SCOPES, "code_challenge_method": "S256"}
    if client_secret is None:
        client_kwargs["token_endpoint_auth_method"] = "none"
    oauth = OAuth()
    client: StarletteOAuth2App = oauth.register(
        name="zitadel",
        client_id=guard.client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )
    return client


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _app_path(request: Request) -> str:
    """Return the request path relative to the app, without any ``root_path``."""
    path = str(request.scope.get("path", "/"))
    root = _root(request)
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")
