"""Flare core: capture errors of a FastAPI app and hand them to storage plugins.

from fastapi import FastAPI
from flare_core import setup

app = FastAPI()
setup(app)
"""

from __future__ import annotations

from .config import FlareConfig
from .errors import (
    FlareConfigError,
    FlareError,
    FlareSetupError,
    InvalidCursor,
    StorageError,
    StorageUnavailable,
)
from .hookspecs import hookimpl, hookspec
from .memory import MemoryStorage
from .models import (
    ErrorGroup,
    FlareLogEntry,
    GroupPage,
    GroupQuery,
    LogPage,
    LogQuery,
    Stats,
    TimelineBucket,
)
from .push import push_log, push_log_sync
from .runtime import Flare, setup
from .storage import Storage

__all__ = [
    "ErrorGroup",
    "Flare",
    "FlareConfig",
    "FlareConfigError",
    "FlareError",
    "FlareLogEntry",
    "FlareSetupError",
    "GroupPage",
    "GroupQuery",
    "InvalidCursor",
    "LogPage",
    "LogQuery",
    "MemoryStorage",
    "Stats",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "TimelineBucket",
    "hookimpl",
    "hookspec",
    "push_log",
    "push_log_sync",
    "setup",
]
