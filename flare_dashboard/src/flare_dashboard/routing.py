"""The route class of every dashboard route: hardening headers and error mapping."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flare_core import InvalidCursor, StorageError, StorageUnavailable

from .params import BadParameter
from .security import set_security_headers

__all__ = ["DashboardRoute", "storage_error_message"]

logger = logging.getLogger(__name__)

_LOG_INTERVAL_SECONDS = 60.0
_last_storage_log = 0.0


def storage_error_message(exc: StorageError) -> str:
    backend = exc.backend or "storage"
    if isinstance(exc, StorageUnavailable):
        return (
            f"The {backend} backend is unreachable, so the dashboard cannot read "
            f"entries right now ({exc}). Captured entries wait in the buffer until "
            "it is back."
        )
    return f"The {backend} backend failed to read entries: {exc}"


def _log_storage_error(exc: StorageError) -> None:
    """Log a read failure at most once a minute, since every refresh repeats it."""
    global _last_storage_log
    now = time.monotonic()
    if now - _last_storage_log >= _LOG_INTERVAL_SECONDS:
        _last_storage_log = now
        logger.warning("Flare dashboard failed to read from storage: %s", exc)


class DashboardRoute(APIRoute):
    """Send a 422 for a bad parameter, a 503 for a storage fault, and hardening headers.

    Exceptions raised by the auth dependency pass through to the app's own
    exception handlers unchanged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except BadParameter as exc:
                response = JSONResponse(
                    {"detail": str(exc), "parameter": exc.name}, 422
                )
            except InvalidCursor as exc:
                detail = f"{exc}; pass the next_cursor of a previous page, or no cursor"
                response = JSONResponse({"detail": detail, "parameter": "cursor"}, 422)
            except StorageError as exc:
                _log_storage_error(exc)
                response = JSONResponse({"detail": storage_error_message(exc)}, 503)
            set_security_headers(
                response, cache=response.headers.get("cache-control", "no-store")
            )
            return response

        return handle
