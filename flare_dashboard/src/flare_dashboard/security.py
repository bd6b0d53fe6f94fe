"""Access control, cross-site request checks and response headers of the dashboard."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.responses import Response
from starlette.types import Scope

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "check_same_origin",
    "dashboard_route_path",
    "loopback_only",
    "set_security_headers",
]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)

# A cross-site form cannot set a custom header, and a cross-site fetch that
# sets one needs a CORS preflight, which fails because the dashboard sends
# no CORS headers.
CSRF_HEADER = "X-Flare-CSRF"

# Headers a reverse proxy or CDN adds. Behind a proxy on the same host every
# peer address is loopback, so their presence, even empty, means the client
# is somewhere else. NOTE: a proxy that adds none of them (nginx's plain
# proxy_pass) cannot be told apart from a local client; configure auth there.
_PROXY_HEADERS = (
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
)
# Host names a browser uses for this machine. A page on another domain that
# DNS-rebinds its name to 127.0.0.1 still sends its own name as Host.
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

_CLOSED_MESSAGE = (
    "The Flare dashboard has no auth configured, so it only answers requests "
    "made directly from this machine (loopback, without proxy headers). "
    "To open it, pass dashboard_auth_dependency=<a FastAPI dependency> to "
    "setup(), install flare-zitadel and set its zitadel_* options, or make it "
    "public on purpose with dashboard_public=True (FLARE_DASHBOARD_PUBLIC=true)."
)


def set_security_headers(response: Response, *, cache: str = "no-store") -> None:
    """Add the CSP and the other hardening headers every dashboard response carries."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cache-Control"] = cache


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_only(request: Request) -> None:
    """Reject every request but a direct one from this machine (403).

    The guard of a dashboard with no auth configured. A request arriving
    through a Unix socket has no peer address and is rejected too, because
    reverse proxies commonly connect that way.
    """
    client = request.scope.get("client")
    host = client[0] if client else ""
    proxied = any(name in request.headers for name in _PROXY_HEADERS)
    if proxied or not _is_loopback(host) or not _is_loopback_host(request):
        raise HTTPException(status_code=403, detail=_CLOSED_MESSAGE)


def _is_loopback_host(request: Request) -> bool:
    """Tell whether the Host header names this machine, port aside."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        name = host.partition("]")[0] + "]"
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name in _LOOPBACK_HOSTS or name.endswith(".localhost")


def check_same_origin(request: Request) -> None:
    """Reject a state-changing request that a browser may have sent cross-site (403).

    The request must carry ``X-Flare-CSRF: 1``. When the browser sends
    ``Sec-Fetch-Site``, it must be ``same-origin``. Without that header, an
    ``Origin`` header must name the host of the ``Host`` header.
    """
    if request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(
            status_code=403,
            detail=f"missing header {CSRF_HEADER}: 1; the dashboard's own page "
            "sends it, so send it too when you call this route from a script",
        )
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site != "same-origin":
            raise HTTPException(
                status_code=403,
                detail="cross-site request rejected "
                f"(Sec-Fetch-Site: {fetch_site[:40]})",
            )
        return
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(
            status_code=403,
            detail=f"cross-site request rejected (Origin: {origin[:100]})",
        )


def dashboard_route_path(scope: Scope) -> str:
    """Return the request path without the ``root_path`` of a proxy or a mount."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest == "" or rest.startswith("/"):
            return rest
    return path


def guard_for(
    auth: Callable[..., Any] | None, public: bool
) -> Callable[..., Any] | None:
    """Return the dependency that guards every route but the static assets."""
    if auth is not None:
        return auth
    if public:
        return None
    return loopback_only
