"""Zitadel auth for the dashboard, at the original fastapi-flare import path."""

from __future__ import annotations

from flare_zitadel import clear_jwks_cache, make_zitadel_dependency

__all__ = ["clear_jwks_cache", "make_zitadel_dependency"]
