"""Start-up failures: clear StorageError messages, and no thread left behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from flare_core import StorageError
from flare_sqlite import SQLiteStorage
from tests.sqlite.conftest import make_entry


def read_only_directory(tmp_path: Path) -> Path:
    """Return a directory this process cannot create files in.

    Root ignores file modes, so for root it is a procfs directory, where
    nobody can create files.
    """
    if os.geteuid() == 0:
        return Path("/proc/self")
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    return directory


def _threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive()}


def _no_new_threads(before: set[threading.Thread]) -> bool:
    """True once every thread started since ``before`` has ended (they end at once)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if _threads() <= before:
            return True
        time.sleep(0.01)
    return False


async def test_corrupt_file_raises_storage_error_naming_path_and_fix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, just some bytes" * 200)
    before = _threads()
    storage = SQLiteStorage(path)
    with pytest.raises(StorageError) as caught:
        await storage.start()
    message = str(caught.value)
    assert str(path) in message
    assert "not a database" in message and "Move the file aside" in message
    assert caught.value.backend == "sqlite"
    assert _no_new_threads(before)
    await storage.close()


async def test_missing_directory_is_created(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "a" / "b" / "flare.db")
    await storage.start()
    try:
        await storage.write_batch([make_entry()])
    finally:
        await storage.close()


async def test_path_under_a_file_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = _threads()
    storage = SQLiteStorage(blocker / "flare.db")
    with pytest.raises(StorageError) as caught:
        await storage.start()
    assert str(blocker / "flare.db") in str(caught.value)
    assert "sqlite_path" in str(caught.value)
    assert _no_new_threads(before)


async def test_read_only_directory_raises_storage_error(tmp_path: Path) -> None:
    directory = read_only_directory(tmp_path)
    before = _threads()
    try:
        storage = SQLiteStorage(directory / "flare.db")
        with pytest.raises(StorageError) as caught:
            await storage.start()
        assert str(directory / "flare.db") in str(caught.value)
        assert "writable" in str(caught.value)
        assert _no_new_threads(before)
    finally:
        if directory.is_relative_to(tmp_path):
            directory.chmod(0o755)


async def test_memory_path_is_refused_clearly() -> None:
    with pytest.raises(StorageError, match="storage_backend='memory'"):
        await SQLiteStorage(":memory:").start()


async def test_close_stops_the_connection_threads(tmp_path: Path) -> None:
    before = _threads()
    storage = SQLiteStorage(tmp_path / "t.db")
    await storage.start()
    assert len(_threads() - before) == 2
    await storage.write_batch([make_entry()])
    await storage.close()
    assert _no_new_threads(before)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "future.db"
    storage = SQLiteStorage(path)
    await storage.start()
    await storage.close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    with pytest.raises(StorageError, match="schema version 99"):
        await SQLiteStorage(path).start()
