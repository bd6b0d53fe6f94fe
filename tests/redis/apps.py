"""A small FastAPI app with Flare on Redis, for in-process and uvicorn tests.

``uvicorn tests.redis.apps:app`` reads its options from ``FLARE_*``
environment variables, such as FLARE_REDIS_URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from flare_core import Flare, setup


def build_app(**options: Any) -> tuple[FastAPI, Flare]:
    """Build the app with Flare on the redis backend; ``options`` go to setup()."""
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/fail")
    async def fail() -> JSONResponse:
        return JSONResponse({"detail": "backend down"}, status_code=503)

    options.setdefault("storage_backend", "redis")
    options.setdefault("worker_interval_seconds", 0.1)
    flare = setup(app, **options)
    return app, flare


def _from_environment() -> FastAPI:
    import os

    if "FLARE_REDIS_URL" not in os.environ:
        # Imported by a test for build_app only; no app is served.
        return FastAPI()
    return build_app()[0]


app = _from_environment()
