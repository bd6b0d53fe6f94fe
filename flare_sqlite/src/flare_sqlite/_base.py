"""``_StorageBase``: the connections, lifecycle and error handling that
``SQLiteStorage`` and its read and write mixins share."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from flare_core.errors import StorageError, StorageUnavailable

from ._rows import (
    _clean_params,
    _contains,
    _is_busy,
    _probe_open,
    _rollback,
    _statements,
)
from .schema import (
    SCHEMA,
    SCHEMA_VERSION,
    TEMP_SCHEMA,
    UPGRADE_AFTER,
    UPGRADE_BEFORE,
)

logger = logging.getLogger("flare_sqlite")

T = TypeVar("T")


class _CommittedThenCancelled(BaseException):
    """A write was cancelled after its COMMIT had gone through."""


class _StorageBase:
    """Connections, lifecycle and error handling shared by the storage mixins.

    ``SQLiteStorage.__init__`` sets the attributes declared here.
    """

    name: str
    path: str
    busy_timeout_ms: int
    _writer: aiosqlite.Connection | None
    _reader: aiosqlite.Connection | None
    _write_lock: asyncio.Lock

    # Lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._writer is not None and self._reader is not None:
            return
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise StorageError(
                "sqlite_path ':memory:' is not supported: the writer and the dashboard "
                "use separate connections. Use storage_backend='memory' for an "
                "in-process store, or give sqlite_path a file name.",
                backend=self.name,
            )
        self._write_lock = asyncio.Lock()
        try:
            self._make_directory()
            self._writer = await self._connect()
            await self._configure_writer(self._writer)
            self._reader = await self._connect()
            await self._reader.execute("PRAGMA query_only = ON")
            await self._reader.create_function(
                "flare_contains", 4, _contains, deterministic=True
            )
            # Touch the schema from the reader too, so a corrupt file fails here.
            await self._reader.execute_fetchall(
                "SELECT value FROM counters WHERE name = 'total'"
            )
        except BaseException as exc:
            await self.close()
            if isinstance(exc, StorageError):
                raise
            if isinstance(exc, sqlite3.Error | OSError):
                raise self._error(exc, "open") from exc
            raise
        logger.info("Flare SQLite storage opened at %s", self.path)

    async def close(self) -> None:
        """Close both connections; never raises, and may be called repeatedly."""
        for attribute in ("_reader", "_writer"):
            connection: aiosqlite.Connection | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if connection is None:
                continue
            try:
                await connection.close()
            except Exception:
                logger.debug(
                    "closing a SQLite connection to %s failed", self.path, exc_info=True
                )

    def _make_directory(self) -> None:
        parent = Path(self.path).expanduser().parent
        if not parent.exists():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"Cannot create the directory {str(parent)!r} for the SQLite "
                    f"database {self.path!r}: {exc}. Create it, or set sqlite_path "
                    "(FLARE_SQLITE_PATH) to a file in a writable directory.",
                    backend=self.name,
                ) from exc

    async def _connect(self) -> aiosqlite.Connection:
        # aiosqlite stops its thread after a failed open but does not wait for
        # it, so the thread may outlive the event loop and fail there. Opening
        # the file once with sqlite3 first makes an unopenable path fail here;
        # it takes well under a millisecond and runs only at start.
        _probe_open(os.path.expanduser(self.path))
        connection = await aiosqlite.connect(
            os.path.expanduser(self.path),
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
        )
        try:
            await connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            # 8 MiB of page cache per connection (two per process): the
            # dashboard's indexed reads need little, and every worker process
            # of the host app pays this in memory.
            await connection.execute("PRAGMA cache_size = -8000")
            await connection.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _configure_writer(self, writer: aiosqlite.Connection) -> None:
        mode = await self._set_wal(writer)
        if mode != "wal":
            raise StorageError(
                f"SQLite database {self.path!r} cannot use WAL mode (journal_mode is "
                f"{mode!r}); Flare needs WAL for concurrent readers and writers. "
                "Put the file on a local file system, or set sqlite_path elsewhere.",
                backend=self.name,
            )
        await writer.execute("PRAGMA synchronous = NORMAL")
        await self._create_schema(writer)
        await writer.executescript(TEMP_SCHEMA)

    async def _set_wal(self, writer: aiosqlite.Connection) -> str:
        # Switching to WAL needs a moment of exclusive access; several worker
        # processes starting at once may collide, so retry briefly.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                rows = await writer.execute_fetchall("PRAGMA journal_mode = WAL")
                return str(next(iter(rows))[0]).lower()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _create_schema(self, writer: aiosqlite.Connection) -> None:
        await writer.execute("BEGIN IMMEDIATE")
        try:
            rows = await writer.execute_fetchall(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'"
            )
            if rows:
                version_rows = await writer.execute_fetchall(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                )
                version = (
                    int(next(iter(version_rows))[0]) if version_rows else SCHEMA_VERSION
                )
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"SQLite database {self.path!r} has schema version "
                        f"{version}, newer than this flare-sqlite understands "
                        f"({SCHEMA_VERSION}). Upgrade flare-sqlite, or set "
                        "sqlite_path to another file.",
                        backend=self.name,
                    )
            else:
                version = SCHEMA_VERSION
            upgrades = range(version, SCHEMA_VERSION)
            for step in upgrades:
                for statement in _statements(UPGRADE_BEFORE.get(step, "")):
                    await writer.execute(statement)
            for statement in _statements(SCHEMA):
                await writer.execute(statement)
            for step in upgrades:
                for statement in _statements(UPGRADE_AFTER.get(step, "")):
                    await writer.execute(statement)
            if upgrades:
                await writer.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
                logger.info(
                    "Flare upgraded the SQLite schema of %s from version %d to %d",
                    self.path,
                    version,
                    SCHEMA_VERSION,
                )
            await writer.execute("COMMIT")
        except BaseException:
            await _rollback(writer)
            raise

    # Errors ---------------------------------------------------------------

    def _error(self, exc: BaseException, action: str) -> StorageError:
        message = str(exc)
        lowered = message.lower()
        path = self.path
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return StorageUnavailable(
                f"SQLite database {path!r} is locked by another connection ({action}): "
                f"{message}. Flare retries; if this lasts, look for a process "
                "holding a long transaction on the file.",
                backend=self.name,
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in lowered
            or "malformed" in lowered
            or "corrupt" in lowered
        ):
            return StorageError(
                f"SQLite file {path!r} is corrupt or not a database ({message}). "
                "Move the file aside (Flare creates a new one at the next start) "
                "or restore it from a backup, or set sqlite_path "
                "(FLARE_SQLITE_PATH) to another file.",
                backend=self.name,
            )
        if (
            "unable to open" in lowered
            or "readonly" in lowered
            or "read-only" in lowered
            or "permission" in lowered
            or isinstance(exc, PermissionError)
        ):
            return StorageError(
                f"Cannot open the SQLite database {path!r} for writing ({message}). "
                "Make the file and its directory writable by this process (WAL "
                "mode also creates -wal and -shm files beside it), or set sqlite_path "
                "(FLARE_SQLITE_PATH) to a writable location.",
                backend=self.name,
            )
        if isinstance(exc, sqlite3.OperationalError | OSError):
            return StorageUnavailable(
                f"SQLite database {path!r} failed to {action}: {message}",
                backend=self.name,
            )
        return StorageError(
            f"SQLite database {path!r} failed to {action}: {message}", backend=self.name
        )

    async def _guard(self, action: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc
        except ValueError as exc:
            if (
                "closed" in str(exc).lower()
                or "no active connection" in str(exc).lower()
            ):
                raise StorageUnavailable(
                    f"SQLite storage {self.path!r} is closed", backend=self.name
                ) from exc
            raise

    def _read_connection(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageUnavailable(
                f"SQLite storage {self.path!r} is not started", backend=self.name
            )
        return self._reader

    def _write_connection(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StorageUnavailable(
                f"SQLite storage {self.path!r} is not started", backend=self.name
            )
        return self._writer

    async def _fetch(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[Any]:
        reader = self._read_connection()
        params = _clean_params(params)
        return list(await self._guard("read", reader.execute_fetchall(sql, params)))

    async def _transaction(
        self,
        action: str,
        body: Callable[[aiosqlite.Connection], Awaitable[T]],
        committed_anyway: Callable[[], None] | None = None,
    ) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction; roll back on failure."""
        async with self._write_lock:
            writer = self._write_connection()

            async def run() -> T:
                committing = False
                try:
                    await writer.execute("BEGIN IMMEDIATE")
                    result = await body(writer)
                    committing = True
                    await writer.execute("COMMIT")
                except BaseException as exc:
                    # aiosqlite runs calls in order: when the rollback is done,
                    # so is a BEGIN or COMMIT that a cancellation interrupted.
                    rolled_back = await asyncio.shield(_rollback(writer))
                    cancelled = isinstance(exc, asyncio.CancelledError)
                    if committing and cancelled and not rolled_back:
                        raise _CommittedThenCancelled from exc
                    raise
                return result

            try:
                return await self._guard(action, run())
            except _CommittedThenCancelled:
                if committed_anyway is not None:
                    committed_anyway()
                raise asyncio.CancelledError from None
