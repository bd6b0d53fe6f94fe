"""One FastAPI app with a route per capture rule, built with or without Flare.

The capture tests send the same request to both builds and compare the
responses, so every route here must respond deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from flare_core import Flare, setup


class Order(BaseModel):
    qty: int
    email: str


class FailingASGIMiddleware:
    """A user's pure ASGI middleware that raises on one path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/asgi-middleware-fails":
            raise LookupError("pure ASGI middleware failed")
        await self.app(scope, receive, send)


def _chained_failure() -> None:
    reports: dict[str, int] = {}
    try:
        reports["missing"]
    except KeyError as exc:
        raise RuntimeError("could not load the report") from exc


def build_app(**flare_options: Any) -> tuple[FastAPI, Flare | None]:
    """Build the app; with ``flare_options`` set up Flare on it with memory storage."""
    app = FastAPI()
    app.add_middleware(FailingASGIMiddleware)

    @app.middleware("http")
    async def failing_http_middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path == "/http-middleware-fails":
            raise ArithmeticError("http middleware failed")
        return await call_next(request)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise HTTPException(
            403, detail="no access to report 7", headers={"WWW-Authenticate": "Bearer"}
        )

    @app.api_route("/upstream", methods=["GET", "HEAD"])
    async def upstream() -> None:
        raise HTTPException(503, detail="upstream down")

    @app.get("/missing")
    async def missing() -> JSONResponse:
        return JSONResponse({"detail": "report 9 not found"}, status_code=404)

    @app.get("/returns-502")
    async def returns_502() -> PlainTextResponse:
        return PlainTextResponse("gateway unhappy", status_code=502)

    @app.post("/orders")
    async def create_order(order: Order) -> Order:
        return order

    @app.get("/crash")
    async def crash() -> None:
        _chained_failure()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> None:
        raise HTTPException(404, detail=f"item {item_id} not found")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"chunk {number}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(await file.read())}

    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    async def sub_thing(thing_id: int) -> None:
        raise ValueError(f"thing {thing_id} is broken")

    app.mount("/sub", sub)

    if not flare_options:
        return app, None
    flare_options.setdefault("storage_backend", "memory")
    return app, setup(app, load_entry_points=False, **flare_options)
