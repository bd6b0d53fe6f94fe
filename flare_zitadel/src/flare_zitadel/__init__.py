"""Zitadel auth for the Flare dashboard: JWT bearer tokens and browser login.

Installed, it wires itself from the ``zitadel_*`` options. To guard the
dashboard by hand instead::

    from flare_core import FlareConfig, setup
    from flare_zitadel import make_zitadel_dependency

    guard = make_zitadel_dependency(
        domain="my-org.zitadel.cloud", client_id="...", project_id="..."
    )
    setup(app, FlareConfig(dashboard_auth_dependency=guard))
"""

from __future__ import annotations

from .dependency import ClaimsCheck, ZitadelGuard, make_zitadel_dependency
from .jwks import JWKSCache, JWKSUnavailable, UnknownKeyId, clear_jwks_cache
from .tokens import InvalidToken, TokenVerifier

__all__ = [
    "ClaimsCheck",
    "InvalidToken",
    "JWKSCache",
    "JWKSUnavailable",
    "TokenVerifier",
    "UnknownKeyId",
    "ZitadelGuard",
    "clear_jwks_cache",
    "make_zitadel_dependency",
]
