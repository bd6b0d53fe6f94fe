"""Run Flare's benchmarks: ``python -m bench [SECTION ...] [options]``.

With no section, every section runs in order. Results are printed as
tables and written to ``bench/results/<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .common import machine_info, results_path, save_results

# Section name -> module in this package; each module has run(args) -> dict.
SECTIONS = {
    "overhead": "overhead",
    "capture": "capture_cost",
    "ingest": "ingest",
    "storm": "storm",
    "queries": "queries",
    "memory": "memory",
}

# Defaults of the full run, and of --quick (a smoke run of a few minutes).
FULL = {
    "rounds": 3,
    "duration": 5.0,
    "entries": 200_000,
    "storm_phase": 20.0,
    "sqlite_rows": 1_000_000,
    "redis_rows": 100_000,
    "repeats": 40,
    "memory_errors": 200_000,
    "iterations": 5_000,
}
QUICK = {
    "rounds": 1,
    "duration": 2.0,
    "entries": 20_000,
    "storm_phase": 4.0,
    "sqlite_rows": 50_000,
    "redis_rows": 10_000,
    "repeats": 10,
    "memory_errors": 10_000,
    "iterations": 1_000,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Flare's overhead, ingest, resilience, queries and memory.",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"sections to run, of: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, help="rounds of alternating variants (3)")
    parser.add_argument(
        "--duration", type=float, help="seconds of wrk load per route (5)"
    )
    parser.add_argument(
        "--entries", type=int, help="entries the ingest section drains (200000)"
    )
    parser.add_argument(
        "--storm-phase", type=float, help="seconds of each error storm phase (20)"
    )
    parser.add_argument(
        "--sqlite-rows", type=int, help="entries for SQLite queries (1000000)"
    )
    parser.add_argument(
        "--redis-rows", type=int, help="entries for Redis queries (100000)"
    )
    parser.add_argument(
        "--repeats", type=int, help="timed calls per dashboard query (40)"
    )
    parser.add_argument(
        "--memory-errors",
        type=int,
        help="500 responses before the memory reading (200000)",
    )
    parser.add_argument(
        "--iterations", type=int, help="captures timed in the capture section (5000)"
    )
    parser.add_argument(
        "--backends",
        default="sqlite,redis",
        help="storages for ingest, storm, queries, memory (sqlite,redis)",
    )
    parser.add_argument("--output", help="JSON file to write (default: bench/results/)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` and fill unset sizes from the full or the --quick defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(
            f"invalid section {unknown[0]!r}; choose from {', '.join(SECTIONS)}"
        )
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if any(key.startswith("FLARE_") for key in os.environ):
        # FLARE_* variables configure Flare inside the benchmarked servers too.
        names = sorted(key for key in os.environ if key.startswith("FLARE_"))
        print(f"NOTE: FLARE_* variables are set and apply to every run: {names}")
    results: dict[str, Any] = {
        "command": "python -m bench "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "options": {
            key: value for key, value in vars(args).items() if key != "sections"
        },
        "sections": {},
    }
    path = Path(args.output) if args.output else results_path()
    failed = []
    for name in args.sections or list(SECTIONS):
        module = importlib.import_module(f"bench.{SECTIONS[name]}")
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        try:
            section = module.run(args)
        except Exception as exc:  # noqa: BLE001 - report it, then run the next section
            traceback.print_exc()
            section = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        section["seconds"] = round(time.monotonic() - started, 1)
        results["sections"][name] = section
        # Written after every section, so a later failure loses nothing.
        save_results(results, path)
    print(f"\nResults written to {path}")
    if failed:
        print(f"These sections failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
