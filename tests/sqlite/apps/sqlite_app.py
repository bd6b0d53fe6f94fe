"""A small FastAPI app that stores its errors with flare-sqlite.

Every Flare option comes from FLARE_* variables that the tests set, such as
FLARE_SQLITE_PATH and FLARE_WORKER_INTERVAL_SECONDS.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from flare_core import setup

app = FastAPI()


@app.get("/ok")
def ok() -> dict[str, bool]:
    return {"ok": True}


@app.get("/fail/{number}")
def fail(number: int) -> None:
    raise HTTPException(status_code=500, detail=f"failure number {number}")


@app.get("/missing")
def missing() -> None:
    raise HTTPException(status_code=404, detail="nothing here")


@app.get("/health")
def health() -> dict[str, Any]:
    return {
        key: value
        for key, value in app.state.flare.health().items()
        if key in ("storage_ready", "buffered", "dropped", "written", "last_error")
    }


flare = setup(app)
