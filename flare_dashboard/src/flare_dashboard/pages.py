"""The HTML page and its static assets, served under ``{dashboard_path}``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader
from starlette.responses import HTMLResponse, Response

from flare_core import FlareConfig, StorageError
from flare_core.models import GROUP_STATUSES, LEVELS

from .params import SORTS
from .routing import storage_error_message

if TYPE_CHECKING:
    from flare_core import Flare

__all__ = ["add_page_routes", "add_static_routes", "dashboard_base"]

DEFAULT_REFRESH_SECONDS = 30
MAX_REFRESH_SECONDS = 3600
VIEWS = ("groups", "entries")

_MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}

_templates = Environment(
    loader=PackageLoader("flare_dashboard", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class StaticAsset:
    body: bytes
    media_type: str
    version: str


def _load_assets() -> dict[str, StaticAsset]:
    assets = {}
    for item in files("flare_dashboard").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in _MEDIA_TYPES:
            body = item.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:12]
            assets[item.name] = StaticAsset(body, _MEDIA_TYPES[suffix], version)
    return assets


ASSETS = _load_assets()


def dashboard_base(request: Request, config: FlareConfig) -> str:
    """Return the dashboard's URL path as the client sees it, proxy prefix included."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/") + config.dashboard_path


def _refresh_seconds(request: Request) -> int:
    """Read the optional ``refresh`` parameter; an invalid value means the default."""
    value = request.query_params.get("refresh", "")
    if value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_REFRESH_SECONDS:
        return int(value)
    return DEFAULT_REFRESH_SECONDS


def _asset_url(base: str, name: str) -> str:
    return f"{base}/static/{name}?v={ASSETS[name].version}"


def add_static_routes(router: APIRouter) -> None:
    """Add the route of the page's script and stylesheet; it needs no auth."""

    @router.get("/static/{name}")
    async def static_asset(name: str, v: str = "") -> Response:
        asset = ASSETS.get(name)
        if asset is None:
            return Response(
                f"no dashboard asset {name[:100]!r}", 404, media_type="text/plain"
            )
        immutable = v == asset.version
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        return Response(
            asset.body, media_type=asset.media_type, headers={"Cache-Control": cache}
        )


def add_page_routes(router: APIRouter, config: FlareConfig, flare: Flare) -> None:
    """Add the dashboard page at the router's prefix, with and without a final slash."""
    template = _templates.get_template("index.html")

    async def page(request: Request) -> HTMLResponse:
        base = dashboard_base(request, config)
        view = request.query_params.get("view", "")
        context: dict[str, Any] = {
            "title": config.dashboard_title,
            "base": base,
            "css_url": _asset_url(base, "dashboard.css"),
            "js_url": _asset_url(base, "dashboard.js"),
            "refresh_seconds": _refresh_seconds(request),
            "view": view if view in VIEWS else VIEWS[0],
            "levels": LEVELS,
            "group_statuses": GROUP_STATUSES,
            "sorts": SORTS,
            "stats": None,
            "error": None,
        }
        status = 200
        try:
            context["stats"] = await flare.stats()
        except StorageError as exc:
            context["error"] = storage_error_message(exc)
            status = 503
        return HTMLResponse(template.render(context), status_code=status)

    router.add_api_route("", page, methods=["GET"])
    router.add_api_route("/", page, methods=["GET"])
