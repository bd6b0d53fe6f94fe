"""The ``dashboard`` plugin: mounts the dashboard and keeps its requests uncaptured."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from starlette.types import Scope

from flare_core import FlareConfig, Storage, hookimpl

from .api import add_api_routes
from .pages import add_page_routes, add_static_routes
from .routing import DashboardRoute
from .security import dashboard_route_path, guard_for

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flare_core import Flare

__all__ = ["flare_mount", "flare_should_capture", "mount_dashboard"]


def mount_dashboard(
    app: FastAPI,
    config: FlareConfig,
    storage: Storage,
    auth: Callable[..., Any] | None,
    flare: Flare,
) -> None:
    """Add the page, the JSON API and the static assets at ``config.dashboard_path``.

    Every route but the static assets depends on ``auth``; with no auth, on
    a loopback-only guard unless ``config.dashboard_public`` is set.
    """
    guard = guard_for(auth, config.dashboard_public)
    dependencies = [Depends(guard)] if guard is not None else []
    prefix = config.dashboard_path
    public = APIRouter(prefix=prefix, route_class=DashboardRoute)
    add_static_routes(public)
    guarded = APIRouter(
        prefix=prefix, route_class=DashboardRoute, dependencies=dependencies
    )
    add_page_routes(guarded, config, flare)
    add_api_routes(guarded, storage, flare)

    app.include_router(public, include_in_schema=False)
    app.include_router(guarded, include_in_schema=False)


@hookimpl
def flare_mount(
    app: FastAPI,
    config: FlareConfig,
    storage: Storage,
    auth: Callable[..., Any] | None,
    flare: Flare,
) -> None:
    mount_dashboard(app, config, storage, auth, flare)


@hookimpl
def flare_should_capture(scope: Scope) -> bool | None:
    """Veto entries for the dashboard's own paths, such as a 404 for an unknown entry.

    The dashboard path comes from the runtime that ``setup()`` stores on the
    app that received the request.
    """
    state = getattr(scope.get("app"), "state", None)
    config = getattr(getattr(state, "flare", None), "config", None)
    if not isinstance(config, FlareConfig):
        return None
    path = dashboard_route_path(scope)
    base = config.dashboard_path
    if path == base or path.startswith(base + "/"):
        return False
    return None
