"""Section 4, error storm: the 500 route under load while the storage goes away.

Three wrk phases of equal length load the 500 route back to back. The
storage stops after the first phase and comes back after the second:
redis-server is stopped and started again on its port, and SQLite is
locked by ``BEGIN EXCLUSIVE`` from another connection. Reported are the
throughput of each phase, the entries written, dropped and still buffered
(their sum must equal the captured 500s), and the server's RSS.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from flare_core import FlareConfig
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

DRAIN_TIMEOUT = 60.0


class Outage:
    """Stop and restart one storage: redis-server itself, or SQLite by a lock."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.path = workdir / "storm.db"
        self.redis: RedisServer | None = None
        self.lock: sqlite3.Connection | None = None
        if backend == "redis":
            self.redis = RedisServer().start()
            self._pin_redis()

    def _pin_redis(self) -> None:
        assert self.redis is not None and self.redis.process is not None
        pin(self.redis.process.pid, LOAD_CPU)

    @property
    def env(self) -> dict[str, str]:
        env = {"BENCH_SQLITE_PATH": str(self.path)}
        if self.redis is not None:
            env["BENCH_REDIS_URL"] = self.redis.url
        return env

    def begin(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            return
        self.lock = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self.lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.redis is not None:
            self.redis.start()
            self._pin_redis()
            return
        assert self.lock is not None
        self.lock.execute("ROLLBACK")
        self.lock.close()
        self.lock = None

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()
        if self.redis is not None:
            self.redis.stop()


class RssSampler(threading.Thread):
    """Read the server's VmRSS twice a second until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(0.5):
            try:
                self.samples.append((time.monotonic() - started, memory_kib(self.pid)))
            except (OSError, KeyError):
                return


def storm(backend: str, phase: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flare-storm-") as workdir:
        outage = Outage(backend, Path(workdir))
        server = AppServer(f"flare-{backend}", outage.env).start()
        sampler = RssSampler(server.pid)
        try:
            result = _storm(server, outage, sampler, phase)
            result["flare_log"] = server.flare_messages()
            return result
        finally:
            sampler.done.set()
            server.stop()
            outage.close()


def _storm(
    server: AppServer, outage: Outage, sampler: RssSampler, phase: float
) -> dict[str, Any]:
    url = server.url + "/boom"
    warmup = run_wrk(url, 1)
    if not wait_until(lambda: server.health()["buffered"] == 0, DRAIN_TIMEOUT):
        raise RuntimeError(f"the warm-up entries were not written: {server.health()}")
    cap = server.health()
    sampler.start()
    rss_before = memory_kib(server.pid)

    before = run_wrk(url, phase)
    outage.begin()
    during = run_wrk(url, phase)
    at_peak = server.health()
    rss_down = memory_kib(server.pid)
    outage.end()
    after = run_wrk(url, phase)

    drained = wait_until(lambda: server.health()["buffered"] == 0, DRAIN_TIMEOUT)
    final = server.health()
    sampler.done.set()
    # wrk counts only the responses it read before it stopped. Requests in
    # flight at its end (up to one per connection per run) were still served
    # and captured, so the server's own sum is the exact count.
    seen_by_wrk = warmup.non_2xx + before.non_2xx + during.non_2xx + after.non_2xx
    captured = final["written"] + final["dropped"] + final["buffered"]
    return {
        "phase_seconds": phase,
        "rps": {"before": before.rps, "during": during.rps, "after": after.rps},
        "p99_ms": {
            "before": before.p99_ms,
            "during": during.p99_ms,
            "after": after.p99_ms,
        },
        "during_over_before": during.rps / before.rps,
        "after_over_before": after.rps / before.rps,
        "captured": captured,
        "500s_seen_by_wrk": seen_by_wrk,
        "written": final["written"],
        "dropped": final["dropped"],
        "buffered_at_end": final["buffered"],
        "drained": drained,
        "buffered_at_outage_end": at_peak["buffered"],
        "buffer_cap": FlareConfig(storage_backend="memory").buffer_size,
        "health_before": cap,
        "rss_kib": {
            "before_outage": rss_before,
            "end_of_outage": rss_down,
            "peak_hwm": memory_kib(server.pid, "VmHWM"),
        },
        "bytes_per_buffered_entry": (rss_down - rss_before)
        * 1024
        / max(at_peak["buffered"], 1),
        "rss_samples": sampler.samples,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    notes: list[str] = []
    results: dict[str, Any] = {}
    for requested in args.backends:
        backend, note = resolve_backend(requested)
        if backend == "memory":
            notes.append(
                f"{requested}: skipped, {note}; MemoryStorage cannot be stopped"
            )
            continue
        print(f"  {requested}: 3 phases of {args.storm_phase:g} s", flush=True)
        results[requested] = storm(backend, args.storm_phase)
    rows = [
        (
            name,
            item["rps"]["before"],
            item["rps"]["during"],
            item["rps"]["after"],
            item["during_over_before"],
            item["captured"],
            item["written"],
            item["dropped"],
            item["buffered_at_end"],
            item["500s_seen_by_wrk"],
            item["rss_kib"]["peak_hwm"] / 1024,
            item["bytes_per_buffered_entry"],
        )
        for name, item in results.items()
    ]
    print_table(
        "Error storm on the 500 route (storage down in the middle phase)",
        [
            "backend",
            "req/s before",
            "during",
            "after",
            "during/before",
            "captured",
            "written",
            "dropped",
            "buffered",
            "wrk saw",
            "peak RSS MiB",
            "bytes/buffered entry",
        ],
        rows,
    )
    for note in notes:
        print(f"NOTE: {note}")
    return {"notes": notes, "backends": results}
