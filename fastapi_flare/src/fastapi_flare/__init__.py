"""fastapi-flare: every Flare distribution in one install, under the original names.

    from fastapi_flare import setup, FlareConfig
    from fastapi_flare.queue import push_log
    from fastapi_flare.zitadel import make_zitadel_dependency

These are the same objects as ``flare_core``'s; this package only re-exports.
"""

from __future__ import annotations

from flare_core import (
    ErrorGroup,
    Flare,
    FlareConfig,
    FlareConfigError,
    FlareError,
    FlareLogEntry,
    FlareSetupError,
    LogPage,
    LogQuery,
    Stats,
    Storage,
    StorageError,
    StorageUnavailable,
    hookimpl,
    push_log,
    push_log_sync,
    setup,
)

__all__ = [
    "ErrorGroup",
    "Flare",
    "FlareConfig",
    "FlareConfigError",
    "FlareError",
    "FlareLogEntry",
    "FlareSetupError",
    "LogPage",
    "LogQuery",
    "Stats",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "hookimpl",
    "push_log",
    "push_log_sync",
    "setup",
]
