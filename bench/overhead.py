"""Section 1, request overhead: server CPU per request, throughput and latency.

Each round starts every variant's server in turn (the order rotates between
rounds) and loads its 200, 404 and 500 routes with wrk. The primary figure
is server CPU per request: utime + stime of the uvicorn process, read from
``/proc/<pid>/stat`` before and after the load, over requests served. Every
figure is a ratio to bare FastAPI measured in the same round, because
throughput on a shared machine drifts between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import redis

from tests.servers import RedisServer

from .common import (
    LOAD_CPU,
    AppServer,
    SentrySink,
    cpu_seconds,
    median,
    pin,
    print_table,
    rotate,
    run_wrk,
)
from .storages import resolve_backend

ROUTES = {"200": "/ok", "404": "/missing/42", "500": "/boom"}
VARIANTS = ("bare", "flare-sqlite", "flare-redis", "sentry")
WARMUP_SECONDS = 1.0


def measure_route(server: AppServer, path: str, seconds: float) -> dict[str, float]:
    run_wrk(server.url + path, WARMUP_SECONDS)
    before = cpu_seconds(server.pid)
    load = run_wrk(server.url + path, seconds)
    spent = cpu_seconds(server.pid) - before
    return {
        "cpu_us": spent / load.requests * 1e6,
        "rps": load.rps,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "requests": load.requests,
        "socket_errors": load.socket_errors,
    }


def _variant_env(
    variant: str, backends: dict[str, str], workdir: Path, **urls: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    if variant.startswith("flare-"):
        env["BENCH_SQLITE_PATH"] = str(workdir / "flare.db")
        env["BENCH_REDIS_URL"] = urls["redis_url"]
    if variant == "sentry":
        env["BENCH_SENTRY_DSN"] = urls["sentry_dsn"]
    return env


def _server_variant(variant: str, backends: dict[str, str]) -> str:
    """Map ``flare-sqlite`` to ``flare-memory`` when flare-sqlite is not ready."""
    if variant.startswith("flare-"):
        return "flare-" + backends[variant.removeprefix("flare-")]
    return variant


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends: dict[str, str] = {}
    notes: list[str] = []
    for name in ("sqlite", "redis"):
        backends[name], note = resolve_backend(name)
        if note:
            notes.append(f"flare-{name}: {note}")
    raw: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        redis_server = RedisServer().start()
        stack.callback(redis_server.stop)
        assert redis_server.process is not None
        pin(redis_server.process.pid, LOAD_CPU)
        sink = SentrySink().start()
        stack.callback(sink.stop)
        for round_index in range(args.rounds):
            for variant in rotate(VARIANTS, round_index):
                raw.extend(
                    _run_variant(
                        args, variant, backends, round_index, redis_server, sink
                    )
                )
    summary = summarize(raw)
    report(summary, notes)
    return {"notes": notes, "backends": backends, "runs": raw, "summary": summary}


def _run_variant(
    args: argparse.Namespace,
    variant: str,
    backends: dict[str, str],
    round_index: int,
    redis_server: RedisServer,
    sink: SentrySink,
) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    with tempfile.TemporaryDirectory(prefix="flare-bench-") as workdir:
        env = _variant_env(
            variant,
            backends,
            Path(workdir),
            redis_url=redis_server.url,
            sentry_dsn=sink.dsn,
        )
        server = AppServer(_server_variant(variant, backends), env).start()
        rows = []
        try:
            for status, path in ROUTES.items():
                figures = measure_route(server, path, args.duration)
                rows.append(
                    {
                        "round": round_index,
                        "variant": variant,
                        "route": status,
                        **figures,
                    }
                )
                print(
                    f"  round {round_index + 1} {variant:13} {status}: "
                    f"{figures['cpu_us']:7.1f} us CPU/req {figures['rps']:8.0f} req/s "
                    f"p99 {figures['p99_ms']:.2f} ms",
                    flush=True,
                )
        finally:
            server.stop()
    return rows


def summarize(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compute each variant's per-round ratios to bare, then their medians."""
    rounds = sorted({row["round"] for row in raw})
    by_key = {(row["round"], row["variant"], row["route"]): row for row in raw}
    summary = []
    for variant in VARIANTS:
        for route in ROUTES:
            ratios: dict[str, list[float]] = {
                "cpu": [],
                "rps": [],
                "p50": [],
                "p99": [],
            }
            deltas: list[float] = []
            absolute: dict[str, list[float]] = {"cpu_us": [], "rps": [], "p99_ms": []}
            for round_index in rounds:
                row = by_key.get((round_index, variant, route))
                bare = by_key.get((round_index, "bare", route))
                if row is None or bare is None:
                    continue
                ratios["cpu"].append(row["cpu_us"] / bare["cpu_us"])
                deltas.append(row["cpu_us"] - bare["cpu_us"])
                ratios["rps"].append(row["rps"] / bare["rps"])
                ratios["p50"].append(row["p50_ms"] / bare["p50_ms"])
                ratios["p99"].append(row["p99_ms"] / bare["p99_ms"])
                for key in absolute:
                    absolute[key].append(row[key])
            if not ratios["cpu"]:
                continue
            summary.append(
                {
                    "variant": variant,
                    "route": route,
                    **{
                        f"{key}_ratio": median(values) for key, values in ratios.items()
                    },
                    **{
                        f"{key}_median": median(values)
                        for key, values in absolute.items()
                    },
                    "cpu_delta_us": median(deltas),
                    "cpu_ratio_range": [min(ratios["cpu"]), max(ratios["cpu"])],
                    "rounds": len(ratios["cpu"]),
                }
            )
    return summary


def report(summary: list[dict[str, Any]], notes: list[str]) -> None:
    rows = [
        (
            item["variant"],
            item["route"],
            item["cpu_us_median"],
            item["cpu_ratio"],
            item["cpu_delta_us"],
            item["rps_ratio"],
            item["p50_ratio"],
            item["p99_ratio"],
            item["rounds"],
        )
        for item in summary
    ]
    headers = [
        "variant",
        "route",
        "CPU us/req",
        "CPU x bare",
        "CPU +us",
        "req/s x bare",
        "p50 x bare",
        "p99 x bare",
        "rounds",
    ]
    print_table("Request overhead (medians of per-round ratios to bare)", headers, rows)
    for note in notes:
        print(f"NOTE: {note}")
