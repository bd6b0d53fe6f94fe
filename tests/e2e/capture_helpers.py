"""Read what the capture test app stored, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.servers import UvicornServer


def stored_entries(server: UvicornServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/_test/entries", timeout=30)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


def wait_for_entries(server: UvicornServer, count: int) -> list[dict[str, Any]]:
    """Poll until ``count`` entries are stored, for at most 10 seconds.

    Flare captures after the app sent its last response message, so an
    entry may arrive just after the client has read the response.
    """
    deadline = time.monotonic() + 10
    entries = stored_entries(server)
    while len(entries) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        entries = stored_entries(server)
    return entries


def wait_for_log(server: UvicornServer, text: str) -> None:
    """Poll the server log until it contains ``text``, for at most 10 seconds."""
    deadline = time.monotonic() + 10
    while text not in server.logs():
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.05)


def assert_no_flare_faults(server: UvicornServer) -> None:
    """Check the server log for every kind of message Flare logs about itself."""
    logs = server.logs()
    for phrase in ("Flare failed", "Flare plugin", "Flare storage", "Flare shut down"):
        assert phrase not in logs
