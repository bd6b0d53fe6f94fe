"""Core's own enrichment: fingerprint first, scrubbing and size limits last."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .hookspecs import hookimpl
from .scrub import FILTERED, Scrubber
from .tracebacks import (
    fingerprint_exception,
    fingerprint_parts,
    normalize_message,
    normalize_path,
)

if TYPE_CHECKING:
    from starlette.types import Scope

    from .config import FlareConfig
    from .models import FlareLogEntry

__all__ = ["CoreEnrichment", "compute_fingerprint"]


def compute_fingerprint(entry: FlareLogEntry, exc: BaseException | None) -> str:
    """Name the fault behind ``entry``.

    An exception is named by its type and innermost frames. An HTTP error or
    a validation error is named by status, method and route template (or
    the path with id-like segments replaced when no route matched). A pushed
    entry is named by its event and its message with variable parts removed.
    """
    handled_http = isinstance(exc, StarletteHTTPException | RequestValidationError)
    if exc is not None and not handled_http:
        return fingerprint_exception(exc)
    if entry.http_status is not None:
        where = entry.route or normalize_path(entry.endpoint or "")
        return fingerprint_parts("http", entry.event, entry.http_status, entry.http_method, where)
    return fingerprint_parts("log", entry.level, entry.event, normalize_message(entry.message))


class CoreEnrichment:
    """Registered by ``setup()`` before any other plugin."""

    def __init__(self, config: FlareConfig) -> None:
        self.scrubber = Scrubber(config)
        self.fields = config.scrub_field_set

    @hookimpl(tryfirst=True)
    def flare_enrich_entry(self, entry: FlareLogEntry, exc: BaseException | None) -> None:
        if entry.fingerprint is None:
            entry.fingerprint = compute_fingerprint(entry, exc)

    @hookimpl(trylast=True, specname="flare_enrich_entry")
    def scrub_and_limit(self, entry: FlareLogEntry, scope: Scope | None) -> None:
        for error in entry.context.get("validation_errors", ()):
            if isinstance(error, dict) and any(
                str(part).lower() in self.fields for part in error.get("loc", ())
            ):
                error["input"] = FILTERED
        self.scrubber.scrub_entry(entry)
        self.scrubber.limit_entry(entry)
