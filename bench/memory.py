"""Section 6, memory: server RSS idle and after many captured errors, against bare.

Each server is started, warmed up on the 200 route, and read while idle.
Then wrk loads the 500 route until ``--memory-errors`` 500 responses were
served. Once the buffer is drained, RSS (VmRSS) and its peak (VmHWM) are
read again. Bare FastAPI serves the same number of 500s.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import RedisServer

from .common import (
    LOAD_CPU,
    AppServer,
    memory_kib,
    pin,
    print_table,
    run_wrk,
    wait_until,
)
from .storages import resolve_backend

LOAD_CHUNK_SECONDS = 10.0
SETTLE_SECONDS = 2.0


def _serve_errors(server: AppServer, count: int) -> int:
    served = 0
    while served < count:
        served += run_wrk(server.url + "/boom", LOAD_CHUNK_SECONDS).non_2xx
    return served


def measure(variant: str, env: dict[str, str], errors: int) -> dict[str, Any]:
    server = AppServer(variant, env).start()
    try:
        run_wrk(server.url + "/ok", 1)
        time.sleep(SETTLE_SECONDS)
        idle = memory_kib(server.pid)
        served = _serve_errors(server, errors)
        drained = True
        if variant != "bare":
            drained = wait_until(lambda: server.health()["buffered"] == 0, 60)
        time.sleep(SETTLE_SECONDS)
        return {
            "variant": variant,
            "idle_kib": idle,
            "after_kib": memory_kib(server.pid),
            "peak_kib": memory_kib(server.pid, "VmHWM"),
            "errors_served": served,
            "drained": drained,
            "health": server.health(),
        }
    finally:
        server.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="flare-mem-"))
        )
        redis_server = RedisServer().start()
        stack.callback(redis_server.stop)
        assert redis_server.process is not None
        pin(redis_server.process.pid, LOAD_CPU)
        env = {
            "BENCH_SQLITE_PATH": str(workdir / "memory.db"),
            "BENCH_REDIS_URL": redis_server.url,
        }
        variants = ["bare"]
        for requested in args.backends:
            backend, note = resolve_backend(requested)
            if note:
                notes.append(f"{requested}: {note}")
            variants.append(f"flare-{backend}")
        for variant in dict.fromkeys(variants):
            print(f"  {variant}: {args.memory_errors:,} errors", flush=True)
            rows.append(measure(variant, env, args.memory_errors))
    bare = rows[0]
    for row in rows:
        row["idle_extra_mib"] = (row["idle_kib"] - bare["idle_kib"]) / 1024
        row["after_extra_mib"] = (row["after_kib"] - bare["after_kib"]) / 1024
        row["peak_extra_mib"] = (row["peak_kib"] - bare["peak_kib"]) / 1024
    print_table(
        f"Server RSS, idle and after {args.memory_errors:,} captured 500s (MiB)",
        ["variant", "idle", "after", "peak", "idle +", "after +", "peak +", "served"],
        [
            (
                row["variant"],
                row["idle_kib"] / 1024,
                row["after_kib"] / 1024,
                row["peak_kib"] / 1024,
                row["idle_extra_mib"],
                row["after_extra_mib"],
                row["peak_extra_mib"],
                row["errors_served"],
            )
            for row in rows
        ],
    )
    for note in notes:
        print(f"NOTE: {note}")
    return {"notes": notes, "variants": rows}
