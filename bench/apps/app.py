"""The app every server benchmark loads, with or without an error tracker.

``BENCH_VARIANT`` picks what is installed on the same three routes:

- ``bare``: plain FastAPI;
- ``flare-sqlite``, ``flare-redis``, ``flare-memory``: ``flare_core.setup``
  with that storage (``BENCH_SQLITE_PATH``, ``BENCH_REDIS_URL``);
- ``sentry``: sentry-sdk sending to ``BENCH_SENTRY_DSN``, a loopback sink,
  with tracing off and 400-599 captured, as Flare captures them.

Variables start with ``BENCH_`` because ``FlareConfig`` rejects unknown
``FLARE_*`` names.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException

VARIANT = os.environ.get("BENCH_VARIANT", "bare")
VARIANTS = ("bare", "flare-sqlite", "flare-redis", "flare-memory", "sentry")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"invalid BENCH_VARIANT {VARIANT!r}; use one of {VARIANTS}")

if VARIANT == "sentry":
    import sentry_sdk
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    codes = set(range(400, 600))
    sentry_sdk.init(
        dsn=os.environ["BENCH_SENTRY_DSN"],
        traces_sample_rate=None,
        integrations=[
            StarletteIntegration(failed_request_status_codes=codes),
            FastApiIntegration(failed_request_status_codes=codes),
        ],
    )

app = FastAPI()


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@app.get("/missing/{item_id}")
async def missing(item_id: int) -> dict[str, int]:
    raise HTTPException(status_code=404, detail=f"item {item_id} not found")


@app.get("/boom")
async def boom() -> dict[str, bool]:
    raise RuntimeError("order processing failed: upstream timed out")


flare: Any = None
if VARIANT.startswith("flare-"):
    from bench.storages import storage_plugins
    from flare_core import Flare, FlareConfig

    backend = VARIANT.removeprefix("flare-")
    options: dict[str, Any] = {"storage_backend": backend}
    if backend == "sqlite":
        options["sqlite_path"] = os.environ["BENCH_SQLITE_PATH"]
    if backend == "redis":
        options["redis_url"] = os.environ["BENCH_REDIS_URL"]
    if "BENCH_BUFFER_SIZE" in os.environ:
        options["buffer_size"] = int(os.environ["BENCH_BUFFER_SIZE"])
    if "BENCH_MAX_ENTRIES" in os.environ:
        options["max_entries"] = int(os.environ["BENCH_MAX_ENTRIES"])
    # Like setup(app), but with the storage plugin alone: the dashboard's
    # routes are not part of what a request to the app costs.
    flare = Flare(
        FlareConfig(**options), storage_plugins(backend), load_entry_points=False
    )
    app.state.flare = flare
    flare.install(app)


@app.get("/_bench/health")
async def health() -> dict[str, Any]:
    """Report Flare's buffer and worker counters; bare and sentry return ``{}``."""
    if flare is None:
        return {}
    result: dict[str, Any] = flare.health()
    return result
