"""flare-sqlite behind a real uvicorn: workers, shutdown, broken files, locks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from flare_core.models import LogQuery, utcnow
from flare_sqlite import SQLiteStorage
from tests.servers import UvicornServer
from tests.sqlite.conftest import make_entry
from tests.sqlite.test_failures import read_only_directory

APP = "tests.sqlite.apps.sqlite_app:app"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _env(path: Path, **options: object) -> dict[str, str]:
    env = {
        "FLARE_STORAGE_BACKEND": "sqlite",
        "FLARE_SQLITE_PATH": str(path),
        "FLARE_WORKER_INTERVAL_SECONDS": "0.2",
        "PYTHONPATH": str(ROOT),
    }
    env.update({f"FLARE_{key.upper()}": str(value) for key, value in options.items()})
    return env


def _count(path: Path, sql: str = "SELECT count(*) FROM entries") -> int:
    connection = sqlite3.connect(path, timeout=10)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _seed_old_entries(path: Path, count: int) -> None:
    async def seed() -> None:
        storage = SQLiteStorage(path)
        await storage.start()
        try:
            old = utcnow() - timedelta(days=30)
            await storage.write_batch(
                [
                    make_entry(timestamp=old, endpoint="/seed", fingerprint="seed")
                    for _ in range(count)
                ]
            )
        finally:
            await storage.close()

    asyncio.run(seed())


def test_four_workers_lose_nothing(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    path = tmp_path / "multi.db"
    # Entries past retention, so that retention deletes while the workers ingest.
    _seed_old_entries(path, 300)
    server = uvicorn_server(
        APP, env=_env(path, worker_batch_size=25), cwd=ROOT, workers=4
    )
    sent = 2000
    stop_reading = threading.Event()
    read_errors: list[BaseException] = []
    reads = 0

    def read_while_writing() -> None:
        nonlocal reads

        async def loop() -> None:
            nonlocal reads
            storage = SQLiteStorage(path)
            await storage.start()
            try:
                while not stop_reading.is_set():
                    await storage.query(LogQuery(limit=20))
                    await storage.query(LogQuery(q="failure", limit=20))
                    await storage.stats()
                    await storage.timeline()
                    reads += 1
            finally:
                await storage.close()

        try:
            asyncio.run(loop())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            read_errors.append(exc)

    reader = threading.Thread(target=read_while_writing)
    reader.start()

    def send(numbers: range) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return [client.get(f"/fail/{number}").status_code for number in numbers]

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            chunks = [
                range(start, min(start + 50, sent)) for start in range(0, sent, 50)
            ]
            statuses = [
                status for result in pool.map(send, chunks) for status in result
            ]
        assert statuses == [500] * sent
        _wait_for(
            lambda: (
                _count(path, "SELECT count(*) FROM entries WHERE endpoint != '/seed'")
                == sent
            ),
            60,
            "every entry to be written",
        )
        _wait_for(
            lambda: (
                _count(path, "SELECT count(*) FROM entries WHERE endpoint = '/seed'")
                == 0
            ),
            30,
            "retention to delete the old entries",
        )
    finally:
        stop_reading.set()
        reader.join(30)
    server.stop()
    assert not read_errors, read_errors
    assert reads > 0
    assert _count(path) == sent
    assert _count(path, "SELECT count(DISTINCT endpoint) FROM entries") == sent
    assert _count(path, "SELECT value FROM counters WHERE name = 'total'") == sent
    group_count = _count(path, "SELECT sum(count) FROM error_groups")
    assert group_count == sent
    assert (
        _count(path, "SELECT count(*) FROM error_groups WHERE fingerprint = 'seed'")
        == 0
    )
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()
    logs = server.logs()
    for needle in (
        "OperationalError",
        "database is locked",
        "Traceback",
        "Flare storage 'sqlite' failed",
    ):
        assert needle not in logs, logs[-3000:]


def test_sigterm_flushes_every_buffered_entry(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    path = tmp_path / "term.db"
    # A long interval: entries wait in the buffer until shutdown flushes them.
    server = uvicorn_server(
        APP,
        env=_env(path, worker_interval_seconds=600, worker_batch_size=1000),
        cwd=ROOT,
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _wait_for(
            lambda: client.get("/health").json()["storage_ready"], 15, "storage start"
        )
        for number in range(100):
            assert client.get(f"/fail/{number}").status_code == 500
        assert client.get("/health").json()["buffered"] == 100
    started = time.monotonic()
    code = server.stop(timeout=15)
    assert time.monotonic() - started < 5
    # uvicorn re-raises the signal after its graceful shutdown.
    assert code in (0, -15), server.logs()
    assert "Finished server process" in server.logs()
    assert _count(path) == 100
    assert _count(path, "SELECT count(DISTINCT endpoint) FROM entries") == 100


def test_shutdown_in_process_leaves_no_thread(tmp_path: Path) -> None:
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient

    from flare_core import setup

    before = set(threading.enumerate())
    app = FastAPI()

    @app.get("/fail/{number}")
    def fail(number: int) -> None:
        raise HTTPException(status_code=500, detail=f"failure {number}")

    path = tmp_path / "inproc.db"
    flare = setup(
        app,
        storage_backend="sqlite",
        sqlite_path=str(path),
        worker_interval_seconds=600,
        worker_batch_size=1000,
    )
    with TestClient(app) as client:
        for number in range(100):
            assert client.get(f"/fail/{number}").status_code == 500
        assert len(flare.buffer) == 100
    assert _count(path) == 100
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


def _broken_paths(tmp_path: Path) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"definitely not SQLite " * 500)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    paths = {"corrupt": corrupt, "under-a-file": blocker / "flare.db"}
    paths["read-only"] = read_only_directory(tmp_path) / "flare.db"
    return paths


@pytest.mark.parametrize("kind", ["corrupt", "under-a-file", "read-only"])
def test_broken_file_keeps_the_app_serving(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path, kind: str
) -> None:
    path = _broken_paths(tmp_path)[kind]
    server = uvicorn_server(APP, env=_env(path), cwd=ROOT)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/ok").status_code == 200
            assert client.get("/missing").status_code == 404
            assert client.get("/fail/1").status_code == 500
        # Let the worker retry a few times with its backoff.
        time.sleep(2.5)
        assert client.get("/health").json()["storage_ready"] is False
    server.stop()
    logs = server.logs()
    warnings = [line for line in logs.splitlines() if "failed to start" in line]
    assert len(warnings) == 1, logs
    assert str(path) in warnings[0]
    assert "Traceback" not in logs


@pytest.mark.parametrize("kind", ["corrupt", "under-a-file"])
def test_strict_startup_fails_with_the_message(tmp_path: Path, kind: str) -> None:
    path = _broken_paths(tmp_path)[kind]
    server = UvicornServer(
        APP,
        env=_env(path, storage_strict_startup="true"),
        cwd=ROOT,
        log_path=tmp_path / "strict.log",
    )
    with pytest.raises(RuntimeError, match="failed to start"):
        server.start(timeout=20)
    logs = server.logs()
    assert str(path) in logs
    assert "sqlite_path" in logs


def test_lock_held_by_another_connection(
    uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    path = tmp_path / "locked.db"
    buffer_size, batch_size = 40, 10
    server = uvicorn_server(
        APP,
        env=_env(path, buffer_size=buffer_size, worker_batch_size=batch_size),
        cwd=ROOT,
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/fail/0").status_code == 500
        _wait_for(lambda: _count(path) == 1, 15, "the first entry")
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            slowest = 0.0
            for number in range(1, 121):
                started = time.monotonic()
                assert client.get(f"/fail/{number}").status_code == 500
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 1.0
            health = client.get("/health").json()
            assert health["buffered"] <= buffer_size
            assert health["dropped"] >= 120 - buffer_size - batch_size
            # Hold the lock past the busy timeout, so a write fails and is retried.
            time.sleep(6.5)
            assert _count(path) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        def drained() -> bool:
            health = client.get("/health").json()
            return bool(
                health["buffered"] == 0 and health["written"] + health["dropped"] == 121
            )

        _wait_for(drained, 40, "the buffer to drain")
        dropped = client.get("/health").json()["dropped"]
    stored = _count(path)
    assert stored == 121 - dropped
    assert _count(path, "SELECT count(DISTINCT endpoint) FROM entries") == stored
    assert _count(path, "SELECT value FROM counters WHERE name = 'total'") == stored
