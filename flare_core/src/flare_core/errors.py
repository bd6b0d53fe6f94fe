"""Exceptions raised by Flare.

    FlareError
     ├── FlareConfigError      an option has a wrong value or name
     ├── FlareSetupError       setup() cannot build the pipeline
     ├── InvalidCursor         a pagination cursor is malformed
     └── StorageError          a storage backend failed
          └── StorageUnavailable   the backend cannot be reached right now

Flare never raises into a request of the host app: these reach user code only
from ``setup()``, from ``FlareConfig(...)`` and from direct storage calls.
"""

from __future__ import annotations

__all__ = [
    "FlareConfigError",
    "FlareError",
    "FlareSetupError",
    "InvalidCursor",
    "StorageError",
    "StorageUnavailable",
]


class FlareError(Exception):
    """Base class of every exception Flare raises."""


class FlareConfigError(FlareError, ValueError):
    """An option has an invalid value or an unknown name.

    ``option`` is the option's name, as accepted by ``FlareConfig``.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class FlareSetupError(FlareError, RuntimeError):
    """``setup()`` could not build the pipeline, for example with no storage."""


class InvalidCursor(FlareError, ValueError):
    """A pagination cursor was not produced by this backend."""


class StorageError(FlareError):
    """A storage backend failed to read or write.

    ``backend`` names the backend, such as ``"sqlite"`` or ``"redis"``.
    """

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class StorageUnavailable(StorageError):
    """The backend cannot be reached; the dashboard shows this as 503."""
