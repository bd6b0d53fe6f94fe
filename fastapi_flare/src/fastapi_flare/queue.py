"""Manual entries, at the import path the original fastapi-flare documents."""

from __future__ import annotations

from flare_core.push import push_log, push_log_sync

__all__ = ["push_log", "push_log_sync"]
