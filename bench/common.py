"""Shared plumbing: processes on loopback, wrk, /proc readings, tables and results.

Every server the benchmarks start listens on 127.0.0.1 on a free port, and
every load run has a fixed duration.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The app server runs on CPU 0; wrk, the Sentry sink and redis-server on
# CPU 1, so that the load generator never takes CPU time from the server.
SERVER_CPU = "0"
LOAD_CPU = "1"


# Machine description -------------------------------------------------------


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _command_output(args: Sequence[str]) -> str:
    if shutil.which(args[0]) is None:
        return "not installed"
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def machine_info() -> dict[str, Any]:
    """Describe the CPU and the versions that the figures depend on."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "fastapi": _package_version("fastapi"),
        "starlette": _package_version("starlette"),
        "uvicorn": _package_version("uvicorn"),
        "uvloop": _package_version("uvloop"),
        "httptools": _package_version("httptools"),
        "pydantic": _package_version("pydantic"),
        "sentry-sdk": _package_version("sentry-sdk"),
        "redis-py": _package_version("redis"),
        "aiosqlite": _package_version("aiosqlite"),
        "redis-server": _command_output(["redis-server", "--version"]),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _command_output(["wrk", "--version"]),
    }


# /proc readings ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return utime + stime of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: field 3 is state, so utime (14) and stime (15)
    # are at offsets 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, key: str = "VmRSS") -> int:
    """Return a ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"{key} not found in /proc/{pid}/status")


# wrk -----------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (done and rps and p50 and p99):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_milliseconds(done.group(2) + done.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=_milliseconds(p50.group(1)),
        p99_ms=_milliseconds(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(url: str, seconds: float, connections: int = 16) -> WrkResult:
    """Load ``url`` (a loopback URL) for ``seconds`` with one wrk thread on CPU 1."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"wrk may only load 127.0.0.1, got {url!r}")
    args = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        url,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


# Processes -----------------------------------------------------------------


class AppServer:
    """uvicorn serving ``bench.apps.app:app`` with one worker, pinned to CPU 0."""

    def __init__(self, variant: str, env: dict[str, str] | None = None) -> None:
        self.variant = variant
        self.port = free_port()
        self.env = {**os.environ, **(env or {}), "BENCH_VARIANT": variant}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{variant}-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"the {self.variant} server is not running")
        return self.process.pid

    def start(self) -> AppServer:
        # taskset execs python in place, so the child's pid is the server's.
        args = [
            "taskset",
            "-c",
            SERVER_CPU,
            sys.executable,
            "-m",
            "uvicorn",
            "bench.apps.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--no-access-log",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, 30, self.process)
            self.get("/ok")
        except (OSError, RuntimeError, TimeoutError, ValueError):
            text = self.log.read_text(errors="replace")[-4000:]
            self.stop()
            raise RuntimeError(
                f"{self.variant} server failed to start:\n{text}"
            ) from None
        return self

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_bench/health")
        return result

    def flare_messages(self, limit: int = 50) -> list[str]:
        """Return the first lines that Flare's loggers wrote to the server's output."""
        lines = []
        with open(self.log, encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("Flare "):
                    lines.append(line.rstrip())
                    if len(lines) == limit:
                        break
        return lines

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # The log contains a traceback per 500 response and can reach hundreds of MB.
        self.log.unlink(missing_ok=True)


class SentrySink:
    """A loopback HTTP server that accepts Sentry envelopes (``bench.sink``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def start(self) -> SentrySink:
        args = [
            "taskset",
            "-c",
            LOAD_CPU,
            sys.executable,
            "-m",
            "bench.sink",
            str(self.port),
        ]
        self.process = subprocess.Popen(args, cwd=ROOT)
        wait_for_port(self.port, 15, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def pin(pid: int, cpu: str) -> None:
    os.sched_setaffinity(pid, {int(cpu)})


# Statistics, tables and results --------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values`` (``fraction`` in 0..1)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def rotate(items: Sequence[str], round_index: int) -> list[str]:
    """Return ``items`` rotated by ``round_index``, so each goes first in turn."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def print_table(
    title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [
            max(width, len(cell)) for width, cell in zip(widths, row, strict=True)
        ]
    print(f"\n{title}")
    print(
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(
            "| "
            + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
            + " |"
        )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def results_path() -> Path:
    """Return ``bench/results/<UTC timestamp>.json``, creating the folder."""
    RESULTS_DIR.mkdir(exist_ok=True)
    return RESULTS_DIR / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"


def save_results(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def wait_until(check: Any, timeout: float, interval: float = 0.25) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())
