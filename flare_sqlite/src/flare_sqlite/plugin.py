"""The ``flare`` entry point of flare-sqlite: builds the ``"sqlite"`` backend."""

from __future__ import annotations

from flare_core.config import FlareConfig
from flare_core.hookspecs import hookimpl

from .storage import SQLiteStorage

__all__ = ["flare_storage"]


@hookimpl
def flare_storage(config: FlareConfig, backend: str) -> SQLiteStorage | None:
    """Build the SQLite storage from ``config.sqlite_path``; connect in ``start()``."""
    if backend != "sqlite":
        return None
    return SQLiteStorage(config.sqlite_path)
