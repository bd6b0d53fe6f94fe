"""The JSON API under ``{dashboard_path}/api``, read by the dashboard's script."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from flare_core import ErrorGroup, LogQuery, Storage
from flare_core.models import GroupStatus

from .params import (
    BadParameter,
    parse_group_query,
    parse_group_status,
    parse_hours,
    parse_log_query,
)
from .security import check_same_origin

if TYPE_CHECKING:
    from flare_core import Flare

__all__ = ["add_api_routes"]

GROUP_ENTRIES = 20
MAX_BODY_BYTES = 1024
SPARKLINE_HOURS = 24


def _not_found(what: str, key: str) -> JSONResponse:
    return JSONResponse({"detail": f"no {what} {key[:100]!r} in this storage"}, 404)


async def _groups_with_sparklines(
    storage: Storage, groups: list[ErrorGroup]
) -> list[dict[str, Any]]:
    fingerprints = [group.fingerprint for group in groups]
    lines = (
        await storage.group_sparklines(fingerprints, SPARKLINE_HOURS) if groups else {}
    )
    empty = [0] * SPARKLINE_HOURS
    return [
        {
            **group.model_dump(mode="json"),
            "sparkline": lines.get(group.fingerprint, empty),
        }
        for group in groups
    ]


def add_api_routes(router: APIRouter, storage: Storage, flare: Flare) -> None:
    """Add the API routes under ``{prefix}/api`` of ``router``."""

    @router.get("/api/logs")
    async def list_logs(request: Request) -> JSONResponse:
        page = await storage.query(parse_log_query(request.query_params))
        return JSONResponse(page.model_dump(mode="json"))

    @router.get("/api/logs/{entry_id}")
    async def get_log(entry_id: str) -> JSONResponse:
        entry = await storage.get(entry_id)
        if entry is None:
            return _not_found("entry", entry_id)
        return JSONResponse(entry.model_dump(mode="json"))

    @router.get("/api/stats")
    async def get_stats() -> JSONResponse:
        stats = await flare.stats()
        return JSONResponse(stats.model_dump(mode="json"))

    @router.get("/api/timeline")
    async def get_timeline(request: Request) -> JSONResponse:
        buckets = await storage.timeline(parse_hours(request.query_params))
        return JSONResponse([bucket.model_dump(mode="json") for bucket in buckets])

    @router.get("/api/groups")
    async def list_groups(request: Request) -> JSONResponse:
        page = await storage.query_groups(parse_group_query(request.query_params))
        items = await _groups_with_sparklines(storage, page.items)
        return JSONResponse({"items": items, "next_cursor": page.next_cursor})

    @router.get("/api/groups/{fingerprint}")
    async def get_group(fingerprint: str) -> JSONResponse:
        group = await storage.get_group(fingerprint)
        if group is None:
            return _not_found("group", fingerprint)
        [item] = await _groups_with_sparklines(storage, [group])
        entries = await storage.query(
            LogQuery(fingerprint=fingerprint, limit=GROUP_ENTRIES)
        )
        return JSONResponse(
            {
                "group": item,
                "entries": [entry.model_dump(mode="json") for entry in entries.items],
            }
        )

    @router.post("/api/groups/{fingerprint}/status")
    async def set_group_status(fingerprint: str, request: Request) -> JSONResponse:
        check_same_origin(request)
        status = parse_group_status(await _json_body(request))
        group = await storage.set_group_status(fingerprint, cast(GroupStatus, status))
        if group is None:
            return _not_found("group", fingerprint)
        return JSONResponse(group.model_dump(mode="json"))

    @router.get("/api/health")
    async def get_health() -> JSONResponse:
        return JSONResponse(flare.health())


async def _json_body(request: Request) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadParameter(
                "status", f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadParameter(
            "status", 'the body must be a JSON object such as {"status": "resolved"}'
        ) from None
