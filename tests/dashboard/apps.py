"""Apps the browser tests serve with uvicorn; options come from FLARE_* variables.

``/seed`` writes a fixed set of entries through the real pipeline, including
one whose fields carry script-injection payloads; ``/boom`` raises.
"""

from __future__ import annotations

import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route

from flare_core import push_log, setup

# Strings that would run script if the page ever parsed stored data as HTML
# or put it into an attribute or a URL.
PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '" onmouseover="alert(3)',
    "<svg onload=alert(4)>",
    "javascript:alert(5)",
)
HOSTILE = " ".join(PAYLOADS)


def require_test_token(request: Request) -> None:
    """Accept requests with ``Authorization: Bearer $FLARE_TEST_TOKEN``."""
    expected = "Bearer " + os.environ["FLARE_TEST_TOKEN"]
    if request.headers.get("authorization") != expected:
        raise HTTPException(401, "missing or wrong bearer token")


def build_app() -> FastAPI:
    app = FastAPI()
    auth = require_test_token if os.environ.get("FLARE_TEST_TOKEN") else None
    flare = setup(app, dashboard_auth_dependency=auth)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom: the order total went negative")

    @app.get("/missing/{item}")
    async def missing(item: str) -> None:
        raise HTTPException(404, f"no item {item}")

    @app.get("/seed")
    async def seed() -> dict[str, int]:
        await push_log(
            flare,
            level="WARNING",
            event="slow_query",
            message="the orders query took 2.5 s",
            endpoint="/orders",
            http_status=200,
        )
        await push_log(
            flare,
            event="payment_failed",
            message="card declined for order 42",
            endpoint="/payments",
            http_method="POST",
            http_status=402,
            context={"order": 42, "gateway": "test"},
        )
        try:
            raise ValueError(HOSTILE)
        except ValueError as exc:
            await push_log(
                flare,
                event="hostile_input",
                message=HOSTILE,
                endpoint="/hostile/" + PAYLOADS[0],
                http_status=500,
                context={
                    "payload": HOSTILE,
                    "link": PAYLOADS[4],
                    PAYLOADS[1]: PAYLOADS[2],
                },
                exc=exc,
            )
        return {"seeded": 3}

    @app.get("/seed-many")
    async def seed_many(count: int) -> dict[str, int]:
        for number in range(count):
            await push_log(
                flare, event="batch_job", message=f"batch item {number} failed"
            )
        return {"seeded": count}

    return app


app = build_app()

# The same app mounted under /proxy, so its requests carry root_path="/proxy"
# as they do behind a proxy that serves the app under a path. A mounted app's
# lifespan does not run by itself, so the parent runs it.
_inner = build_app()


@asynccontextmanager
async def _inner_lifespan(parent: Starlette) -> AsyncIterator[None]:
    async with _inner.router.lifespan_context(_inner):
        yield


prefixed = Starlette(routes=[Mount("/proxy", app=_inner)], lifespan=_inner_lifespan)


# A page on another origin that tries to change a group's status on the
# dashboard at FLARE_TEST_TARGET, once with fetch and once with a form.
attacker = FastAPI()


@attacker.get("/attack")
async def attack(fingerprint: str) -> HTMLResponse:
    target = os.environ["FLARE_TEST_TARGET"]
    action = html.escape(f"{target}/flare/api/groups/{fingerprint}/status")
    page = f"""<!doctype html>
<p id="fetch-result">pending</p>
<form id="form" method="post" action="{action}" enctype="text/plain">
<input name='{{"status": "resolved", "x": "' value='"}}'>
</form>
<script>
const result = document.getElementById("fetch-result");
fetch("{action}", {{
  method: "POST",
  headers: {{"Content-Type": "application/json", "X-Flare-CSRF": "1"}},
  body: JSON.stringify({{status: "resolved"}}),
}}).then(
  (response) => {{ result.textContent = "sent " + response.status; }},
  () => {{ result.textContent = "blocked"; }},
);
</script>"""
    return HTMLResponse(page)


# A reverse proxy that serves FLARE_TEST_UPSTREAM under /proxy: it strips the
# prefix and adds X-Forwarded-For, as nginx's proxy_pass with a path does.
_HOP_HEADERS = {"host", "connection", "content-length", "transfer-encoding"}


async def _forward(request: Request) -> Response:
    upstream = os.environ["FLARE_TEST_UPSTREAM"] + "/" + request.path_params["rest"]
    headers = {
        name: value
        for name, value in request.headers.items()
        if name not in _HOP_HEADERS
    }
    headers["x-forwarded-for"] = request.client.host if request.client else "unknown"
    async with httpx.AsyncClient() as client:
        reply = await client.request(
            request.method,
            upstream,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
    kept = {
        name: value
        for name, value in reply.headers.items()
        if name not in _HOP_HEADERS and name != "content-encoding"
    }
    return Response(reply.content, reply.status_code, headers=kept)


proxy = Starlette(
    routes=[Route("/proxy/{rest:path}", _forward, methods=["GET", "POST"])]
)
