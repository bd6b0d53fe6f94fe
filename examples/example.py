"""A demo app with one route per kind of error Flare captures.

Run it with `make demo`, or:

    uvicorn examples.example:app --port 8000

It stores entries in SQLite at flare.db; with FLARE_REDIS_URL set it uses
Redis Streams instead. Open http://127.0.0.1:8000/flare for the dashboard.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from flare_core import push_log, setup

app = FastAPI(title="Flare demo")
flare = setup(app, dashboard_title="Flare demo", worker_interval_seconds=2)


class Order(BaseModel):
    qty: int
    email: str


@app.get("/")
async def index() -> dict[str, str]:
    return {"status": "ok", "dashboard": "/flare"}


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("Something exploded in /boom")


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    if item_id == 999:
        raise HTTPException(status_code=404, detail=f"Item {item_id} not found")
    return {"item_id": item_id}


@app.post("/orders")
async def create_order(order: Order) -> Order:
    """Send {"qty": "many"} to get a 422 validation error."""
    return order


@app.get("/sync-fail")
def sync_fail() -> None:
    """Raise from a plain `def` endpoint, which runs in the threadpool."""
    {}["missing-key"]


@app.post("/payments/{payment_id}/decline")
async def decline(payment_id: str) -> dict[str, bool]:
    await push_log(
        flare,
        level="WARNING",
        event="payment_declined",
        message=f"Card declined for payment {payment_id}",
        context={"payment_id": payment_id, "amount": 2500},
    )
    return {"logged": True}
