"""Real servers for the tests: redis-server and uvicorn, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# CI sets CI=true: a test whose service or browser is missing fails there
# instead of being skipped.
REQUIRE_SERVICES = os.environ.get("CI", "").lower() == "true" or bool(
    os.environ.get("FLARE_TEST_REQUIRE_SERVICES")
)
CHROMIUM = os.environ.get("FLARE_TEST_CHROMIUM", "/usr/bin/chromium")


def missing(reason: str) -> None:
    """Skip for lack of a service, or fail when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (required because CI is set)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server on port {port} exited with {process.returncode}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class RedisServer:
    """A private redis-server on a free loopback port, with no persistence."""

    def __init__(
        self, port: int | None = None, extra_args: list[str] | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.dir = tempfile.mkdtemp(prefix="flare-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class UvicornServer:
    """``python -m uvicorn APP`` in a child process on a free loopback port."""

    def __init__(
        self,
        app: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        workers: int = 1,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.app = app
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.cwd = str(cwd) if cwd else None
        self.workers = workers
        self.extra_args = extra_args or []
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="uvicorn-", suffix=".log")[1]
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> UvicornServer:
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(self.port, timeout, self.process)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise RuntimeError(
                f"uvicorn {self.app} failed to start:\n{self.logs()}"
            ) from None
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        """Send SIGTERM, wait for a graceful exit, and return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self._log.close()
        self.process = None
        return code

    def logs(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )
