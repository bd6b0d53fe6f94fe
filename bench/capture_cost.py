"""Section 2, capture cost per entry: the request-path work of one captured 500.

Times ``CaptureMiddleware._capture`` (should_capture hook, RequestRecord,
build_entry, Flare.enrich, EntryBuffer.put) on a 30-frame exception, each
stage alone, and the whole middleware around a raising ASGI app against the
same app without it. cProfile shows where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import pstats
import time
import traceback
from collections.abc import Callable
from typing import Any

from flare_core import Flare, FlareConfig
from flare_core.capture import CaptureMiddleware, Exchange
from flare_core.entries import RequestRecord, build_entry

from .common import median, percentile, print_table

FRAMES = 30


class _Route:
    """The route attribute Starlette puts into the scope."""

    path = "/api/v1/orders/{order_id}"
    path_format = path


def _raise_at_depth(depth: int) -> None:
    if depth <= 1:
        raise RuntimeError("order 1234 failed: upstream timed out after 30.0 s")
    _raise_at_depth(depth - 1)


def deep_exception() -> RuntimeError:
    """Return a RuntimeError whose traceback has exactly ``FRAMES`` frames."""
    try:
        _raise_at_depth(FRAMES - 1)
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


def make_scope() -> dict[str, Any]:
    headers = [
        (b"host", b"api.example.test"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
        (b"accept", b"application/json"),
        (b"content-type", b"application/json"),
        (b"content-length", b"58"),
        (b"authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature"),
        (b"cookie", b"session=abc123; theme=dark"),
        (b"x-forwarded-for", b"203.0.113.7"),
    ]
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/orders/1234",
        "raw_path": b"/api/v1/orders/1234",
        "root_path": "",
        "query_string": b"expand=items&token=secret-value",
        "headers": headers,
        "client": ("127.0.0.1", 51234),
        "server": ("127.0.0.1", 8000),
        "route": _Route(),
    }


def make_exchange() -> Exchange:
    exchange = Exchange(time.perf_counter())
    exchange.status = 500
    exchange.complete = True
    exchange.ended = exchange.started + 0.004
    exchange.request_id = "0123456789ab0000000001"
    exchange.body = [b'{"item": 42, "quantity": 3, "password": "hunter2", "note": "x"}']
    exchange.body_size = len(exchange.body[0])
    return exchange


def make_flare(buffer_size: int) -> Flare:
    config = FlareConfig(storage_backend="memory", buffer_size=buffer_size)
    return Flare(config, load_entry_points=False)


def _time_stage(iterations: int, stage: Callable[[], Any]) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        stage()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def time_stages(iterations: int) -> dict[str, list[float]]:
    """Time each stage and the whole ``_capture`` call, in microseconds."""
    flare = make_flare(iterations * 8)
    middleware = CaptureMiddleware(lambda *_: None, flare)  # type: ignore[arg-type]
    scope = make_scope()
    exc = deep_exception()
    assert len(traceback.extract_tb(exc.__traceback__)) == FRAMES
    exchange = make_exchange()
    record = RequestRecord(scope, exchange, flare.config)
    entries = [build_entry(record, raised=exc, handled=None) for _ in range(iterations)]
    enriched = iter(entries)
    for entry in entries[: iterations // 2]:
        flare.enrich(entry, scope, exc)
    queued = iter(entries)

    samples = {
        "should_capture hook": _time_stage(
            iterations, lambda: flare.should_capture(scope, 500, exc)
        ),
        "RequestRecord": _time_stage(
            iterations, lambda: RequestRecord(scope, exchange, flare.config)
        ),
        "build_entry": _time_stage(
            iterations, lambda: build_entry(record, raised=exc, handled=None)
        ),
        "Flare.enrich": _time_stage(
            iterations, lambda: flare.enrich(next(enriched), scope, exc)
        ),
        "EntryBuffer.put": _time_stage(
            iterations, lambda: flare.buffer.put(next(queued))
        ),
    }
    fresh = [deep_exception() for _ in range(iterations)]
    raised = iter(fresh)
    samples["_capture (total)"] = _time_stage(
        iterations, lambda: middleware._capture(scope, make_exchange(), next(raised))
    )
    return samples


def time_scrub_fields(iterations: int) -> dict[str, dict[str, float]]:
    """Time ``Scrubber.scrub_text`` on each text field of a built entry."""
    flare = make_flare(16)
    record = RequestRecord(make_scope(), make_exchange(), flare.config)
    entry = build_entry(record, raised=deep_exception(), handled=None)
    scrubber = flare.enrichment.scrubber
    timings = {}
    for name in ("message", "error", "stack_trace", "endpoint"):
        text = getattr(entry, name) or ""
        samples = _time_stage(iterations, functools.partial(scrubber.scrub_text, text))
        timings[name] = {"chars": len(text), "p50_us": median(samples)}
    return timings


async def _asgi_round(app: Any, scope: dict[str, Any], calls: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter_ns()
    for _ in range(calls):
        with contextlib.suppress(RuntimeError):
            await app(dict(scope), receive, send)
    return (time.perf_counter_ns() - started) / 1000 / calls


async def raising_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 500, "headers": []})
    await send({"type": "http.response.body", "body": b"Internal Server Error"})
    _raise_at_depth(FRAMES - 2)


def time_middleware(iterations: int, rounds: int) -> dict[str, float]:
    """Compare the raising app with and without ``CaptureMiddleware``, alternating."""
    flare = make_flare(iterations * rounds * 2)
    wrapped = CaptureMiddleware(raising_app, flare)
    scope = make_scope()
    bare_times: list[float] = []
    wrapped_times: list[float] = []
    for _ in range(max(rounds, 3)):
        bare_times.append(asyncio.run(_asgi_round(raising_app, scope, iterations)))
        wrapped_times.append(asyncio.run(_asgi_round(wrapped, scope, iterations)))
        flare.buffer.take(len(flare.buffer))
    return {
        "app alone us": median(bare_times),
        "app with CaptureMiddleware us": median(wrapped_times),
        "difference us": median(
            w - b for w, b in zip(wrapped_times, bare_times, strict=True)
        ),
    }


def profile(iterations: int, top: int = 15) -> list[dict[str, Any]]:
    """Profile ``_capture`` with cProfile; return the top functions by own time."""
    flare = make_flare(iterations * 2)
    middleware = CaptureMiddleware(lambda *_: None, flare)  # type: ignore[arg-type]
    scope = make_scope()
    errors = [deep_exception() for _ in range(iterations)]
    profiler = cProfile.Profile()
    profiler.enable()
    for exc in errors:
        middleware._capture(scope, make_exchange(), exc)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({name})",
                "calls_per_capture": calls / iterations,
                "own_us_per_capture": own / iterations * 1e6,
                "cumulative_us_per_capture": cumulative / iterations * 1e6,
            }
        )
    rows.sort(key=lambda row: row["own_us_per_capture"], reverse=True)
    return rows[:top]


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def run(args: argparse.Namespace) -> dict[str, Any]:
    iterations = args.iterations
    stages = time_stages(iterations)
    stage_summary = {
        name: {"p50_us": median(values), "p95_us": percentile(values, 0.95)}
        for name, values in stages.items()
    }
    middleware = time_middleware(max(iterations // 5, 200), args.rounds)
    top = profile(iterations)
    fields = time_scrub_fields(max(iterations // 5, 200))
    print_table(
        f"Capture cost per entry ({FRAMES}-frame exception, {iterations} iterations)",
        ["stage", "p50 us", "p95 us"],
        [
            (name, item["p50_us"], item["p95_us"])
            for name, item in stage_summary.items()
        ],
    )
    print_table(
        "Raising ASGI app with and without CaptureMiddleware (per call)",
        ["measure", "us"],
        list(middleware.items()),
    )
    print_table(
        "Scrubber.scrub_text per entry field",
        ["field", "chars", "p50 us"],
        [(name, item["chars"], item["p50_us"]) for name, item in fields.items()],
    )
    print_table(
        "cProfile of _capture: top functions by own time",
        ["function", "calls", "own us", "cumulative us"],
        [
            (
                row["function"],
                row["calls_per_capture"],
                row["own_us_per_capture"],
                row["cumulative_us_per_capture"],
            )
            for row in top
        ],
    )
    return {
        "frames": FRAMES,
        "stages": stage_summary,
        "middleware": middleware,
        "scrub_fields": fields,
        "profile": top,
    }
