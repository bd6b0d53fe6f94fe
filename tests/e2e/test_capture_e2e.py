"""Capture through a real uvicorn server: tracebacks in the server log,
background tasks, streaming, raw bytes, client IPs and load."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers import UvicornServer

from .capture_helpers import (
    assert_no_flare_faults,
    stored_entries,
    wait_for_entries,
    wait_for_log,
)

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.apps.capture_app:app"

StartServer = Callable[..., UvicornServer]


def _start(uvicorn_server: StartServer, **env: str) -> UvicornServer:
    return uvicorn_server(APP, cwd=ROOT, env=env)


def test_unhandled_exception_logged_by_server(uvicorn_server: StartServer) -> None:
    server = _start(uvicorn_server)
    response = httpx.get(f"{server.url}/crash", timeout=10)
    (entry,) = wait_for_entries(server, 1)
    logs = server.logs()

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert entry["event"] == "unhandled_exception"
    assert entry["exception_type"] == "RuntimeError"
    assert entry["ip_address"] == "127.0.0.1"
    assert entry["http_status"] == 500
    assert "ValueError: invalid literal for int()" in entry["stack_trace"]
    assert entry["duration_ms"] >= 0
    assert "Exception in ASGI application" in logs
    assert "RuntimeError: crash after a bad number" in logs
    assert_no_flare_faults(server)


def test_failing_background_task_one_entry(uvicorn_server: StartServer) -> None:
    server = _start(uvicorn_server)
    response = httpx.post(f"{server.url}/orders/42/confirm", timeout=10)
    # uvicorn logs the exception once it left the app, and so left Flare;
    # by then every entry of this request is buffered.
    wait_for_log(server, "Exception in ASGI application")
    entries = stored_entries(server)

    assert response.status_code == 200
    assert response.json() == {"status": "confirmed"}
    assert len(entries) == 1
    entry = entries[0]
    assert entry["event"] == "background_task_error"
    assert entry["exception_type"] == "KeyError"
    assert "order 42 vanished" in entry["message"]
    assert "in failing_job" in entry["stack_trace"]
    assert "in _load_order" in entry["stack_trace"]
    assert entry["http_status"] == 200
    assert entry["context"]["background"] is True
    assert "response already started" not in server.logs().lower()
    assert_no_flare_faults(server)


def test_slow_background_task_not_awaited(uvicorn_server: StartServer) -> None:
    server = _start(uvicorn_server)
    with httpx.Client(timeout=10) as client:
        client.get(f"{server.url}/_test/health")
        started = time.perf_counter()
        response = client.post(f"{server.url}/slow-background")
        elapsed = time.perf_counter() - started

    assert response.json() == {"status": "queued"}
    assert elapsed < 0.5


async def test_stream_not_buffered(uvicorn_server: StartServer) -> None:
    server = _start(uvicorn_server)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.aiter_raw()
        async with asyncio.timeout(5):
            first = await anext(chunks)
        await client.post("/stream/release")
        rest = b"".join([chunk async for chunk in chunks])

    assert first == b"first\n"
    assert rest == b"second\n"


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_non_utf8_bytes_captured(uvicorn_server: StartServer) -> None:
    server = _start(uvicorn_server)
    reply = _raw_request(
        server.port,
        b"GET /caf%E9/%FF?q=%FF HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"X-Note: caf\xe9 \xff\r\n"
        b"Connection: close\r\n\r\n",
    )
    (entry,) = wait_for_entries(server, 1)

    assert reply.startswith(b"HTTP/1.1 404")
    assert entry["http_status"] == 404
    assert entry["endpoint"].startswith("/caf")
    assert entry["context"]["request"]["headers"]["x-note"] == "caf\xe9 \xff"
    assert_no_flare_faults(server)


def test_client_ip_untrusted_peer(uvicorn_server: StartServer) -> None:
    # uvicorn itself rewrites the peer from X-Forwarded-For when the peer is
    # 127.0.0.1 unless --no-proxy-headers is given; Flare must not.
    server = uvicorn_server(APP, cwd=ROOT, extra_args=["--no-proxy-headers"])
    headers = {
        "X-Forwarded-For": "203.0.113.9, 192.0.2.50",
        "X-Real-IP": "198.51.100.7",
    }
    httpx.get(f"{server.url}/missing/1", headers=headers, timeout=10)
    (entry,) = wait_for_entries(server, 1)

    assert entry["ip_address"] == "127.0.0.1"


def test_client_ip_behind_trusted_proxy(uvicorn_server: StartServer) -> None:
    server = uvicorn_server(
        APP,
        cwd=ROOT,
        env={"FLARE_TRUSTED_PROXIES": "127.0.0.1"},
        extra_args=["--no-proxy-headers"],
    )
    headers = {"X-Forwarded-For": "203.0.113.9, 192.0.2.50"}
    httpx.get(f"{server.url}/missing/1", headers=headers, timeout=10)
    (entry,) = wait_for_entries(server, 1)

    assert entry["ip_address"] == "192.0.2.50"


@pytest.mark.slow
async def test_thousand_concurrent_failures_stored(uvicorn_server: StartServer) -> None:
    # The server's own traceback logging of 1,000 failures is left out to
    # keep the test short; another test checks that it still happens.
    server = uvicorn_server(
        APP,
        cwd=ROOT,
        env={"FLARE_BUFFER_SIZE": "2000"},
        extra_args=["--log-level", "critical"],
    )
    # uvicorn closes a connection after an exception escaped the app, so
    # each request gets its own connection instead of racing that close.
    headers = {"Connection": "close"}
    limits = httpx.Limits(max_connections=1000)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=120, limits=limits
    ) as client:
        responses = await asyncio.gather(
            *(client.get(f"/fail/{n}", headers=headers) for n in range(1000))
        )
    stored = wait_for_entries(server, 1000)
    health = httpx.get(f"{server.url}/_test/health", timeout=10).json()

    assert [response.status_code for response in responses] == [500] * 1000
    assert len(stored) == 1000
    assert sorted(entry["message"] for entry in stored) == sorted(
        f"failure {n}" for n in range(1000)
    )
    assert len({entry["request_id"] for entry in stored}) == 1000
    assert health["dropped"] == 0
    assert_no_flare_faults(server)


def test_sigterm_flushes_buffer(uvicorn_server: StartServer, tmp_path: Path) -> None:
    sink = tmp_path / "stored.txt"
    server = _start(
        uvicorn_server,
        FLARE_TEST_SINK_FILE=str(sink),
        FLARE_WORKER_INTERVAL_SECONDS="3600",
    )
    for number in range(3):
        httpx.get(f"{server.url}/fail/{number}", timeout=10)
    written_before_stop = sink.exists()
    server.stop()

    assert written_before_stop is False
    assert "Application shutdown complete." in server.logs()
    assert sink.read_text().splitlines() == [f"failure {n}" for n in range(3)]


def test_stalled_storage_keeps_latency(uvicorn_server: StartServer) -> None:
    server = _start(
        uvicorn_server,
        FLARE_TEST_STALLED_STORAGE="1",
        FLARE_BUFFER_SIZE="50",
        FLARE_WORKER_BATCH_SIZE="10",
    )
    latencies = []
    buffered = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(300):
            started = time.perf_counter()
            # A new connection each time, since uvicorn closes the connection
            # after an exception escaped the app.
            response = client.get(f"/fail/{number}", headers={"Connection": "close"})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 500
            buffered.append(client.get("/_test/health").json()["buffered"])
        stalled_health = client.get("/_test/health").json()
        client.post("/_test/release-storage")
    stored = wait_for_entries(server, 60)
    messages = [entry["message"] for entry in stored]

    assert max(buffered) == 50
    assert stalled_health["written"] == 0
    assert stalled_health["dropped"] == 240
    # The bound is generous because other processes may load the machine. A
    # request that waited for the stalled storage would time out instead.
    assert statistics.quantiles(latencies, n=20)[-1] < 0.5
    assert len(messages) == len(set(messages)) == 60
    assert messages[:10] == [f"failure {n}" for n in range(10)]
    assert messages[10:] == [f"failure {n}" for n in range(250, 300)]
    assert_no_flare_faults(server)
