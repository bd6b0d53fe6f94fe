"""flare-sqlite: Flare's storage in one SQLite file, with WAL and full-text search.

from flare_core import setup
setup(app, storage_backend="sqlite", sqlite_path="/var/lib/myapp/flare.db")
"""

from __future__ import annotations

from .storage import SQLiteStorage

__all__ = ["SQLiteStorage"]
