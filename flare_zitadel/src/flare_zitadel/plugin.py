"""The ``zitadel`` plugin: Zitadel auth for the Flare dashboard, wired from config.

With ``zitadel_domain``, ``zitadel_client_id`` and ``zitadel_project_id`` set,
``flare_dashboard_auth`` returns a ``ZitadelGuard`` that accepts bearer
tokens. With ``zitadel_session_secret`` set as well, ``flare_mount`` adds the
browser login routes under ``{dashboard_path}/auth``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from flare_core import FlareConfig, FlareConfigError, hookimpl

from .dependency import ZitadelGuard, make_zitadel_dependency
from .login import MIN_SECRET_CHARS, BrowserLogin

__all__ = ["flare_dashboard_auth", "flare_mount"]

logger = logging.getLogger(__name__)

REQUIRED_OPTIONS = ("zitadel_domain", "zitadel_client_id", "zitadel_project_id")


@hookimpl
def flare_dashboard_auth(config: FlareConfig) -> ZitadelGuard | None:
    """Return the Zitadel guard when the three required options are set.

    :raises FlareConfigError: when only one or two of them are set.
    """
    present = [name for name in REQUIRED_OPTIONS if getattr(config, name)]
    if not present:
        return None
    missing = [name for name in REQUIRED_OPTIONS if name not in present]
    if missing:
        names = ", ".join(f"{name} (FLARE_{name.upper()})" for name in missing)
        raise FlareConfigError(
            f"Zitadel auth is incomplete: {', '.join(present)} set but {names} "
            "missing. Set all three, or none to leave Zitadel off.",
            option=missing[0],
        )
    guard = make_zitadel_dependency(
        domain=str(config.zitadel_domain),
        client_id=str(config.zitadel_client_id),
        project_id=str(config.zitadel_project_id),
        issuer=config.zitadel_issuer,
        old_client_id=config.zitadel_old_client_id,
        old_project_id=config.zitadel_old_project_id,
        leeway_seconds=config.zitadel_leeway_seconds,
        jwks_ttl_seconds=config.zitadel_jwks_ttl_seconds,
        jwks_refresh_cooldown_seconds=config.zitadel_jwks_refresh_cooldown_seconds,
    )
    logger.info("Flare dashboard accepts Zitadel tokens from %s", guard.verifier.issuer)
    return guard


@hookimpl
def flare_mount(
    app: FastAPI, config: FlareConfig, auth: Callable[..., Any] | None
) -> None:
    """Add the browser login routes when the guard is Zitadel's and a secret is set."""
    if not isinstance(auth, ZitadelGuard):
        return
    if auth.login is not None:
        # NOTE: a guard shared by several apps keeps the browser login settings
        # (dashboard path, secrets) of the first app that was set up.
        _mount_first(app, auth.login)
        return
    if config.zitadel_session_secret is None:
        logger.info(
            "Flare dashboard browser login is off: set zitadel_session_secret "
            "(FLARE_ZITADEL_SESSION_SECRET) to turn it on"
        )
        return
    secret = config.zitadel_session_secret.get_secret_value()
    if len(secret) < MIN_SECRET_CHARS:
        raise FlareConfigError(
            f"zitadel_session_secret has {len(secret)} characters but needs at least "
            f"{MIN_SECRET_CHARS}. Generate one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'",
            option="zitadel_session_secret",
        )
    client_secret = config.zitadel_client_secret
    login = BrowserLogin(
        auth,
        dashboard_path=config.dashboard_path,
        session_secret=secret,
        client_secret=client_secret.get_secret_value() if client_secret else None,
        session_max_age_seconds=config.zitadel_session_max_age_seconds,
    )
    _mount_first(app, login)
    logger.info("Flare dashboard browser login is on at %s/login", login.auth_path)


def _mount_first(app: FastAPI, login: BrowserLogin) -> None:
    """Include the login routes ahead of every other route.

    The dashboard may serve a catch-all under its path; the login routes
    must match before it.
    """
    before = list(app.router.routes)
    app.include_router(login.router())
    added = [route for route in app.router.routes if route not in before]
    app.router.routes[:] = added + before
