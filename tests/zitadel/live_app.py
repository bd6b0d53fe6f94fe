"""The app the browser test serves with uvicorn; Zitadel comes from FLARE_ZITADEL_*."""

from __future__ import annotations

from fastapi import FastAPI

from flare_core import setup

app = FastAPI()


@app.get("/")
async def home() -> dict[str, str]:
    return {"app": "outside the dashboard"}


setup(app, storage_backend="memory")
