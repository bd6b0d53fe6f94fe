"""Core's own enrichment: fingerprint first, scrubbing and size limits last."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import normalize_key
from .hookspecs import hookimpl
from .scrub import FILTERED, Scrubber, encode_safely
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

logger = logging.getLogger(__name__)


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
        if entry.route:
            where = entry.route
        elif entry.http_status in (404, 405):
            # Paths no route matches are endless (scanners, typos); one group
            # per status and method keeps them from burying real faults.
            where = "<no matching route>"
        else:
            where = normalize_path(entry.endpoint or "")
        return fingerprint_parts(
            "http", entry.event, entry.http_status, entry.http_method, where
        )
    return fingerprint_parts(
        "log", entry.level, entry.event, normalize_message(entry.message)
    )


class CoreEnrichment:
    """Registered by ``setup()`` before any other plugin."""

    def __init__(self, config: FlareConfig) -> None:
        self.scrubber = Scrubber(config)
        self.fields = config.scrub_field_set
        self._failures = 0
        self._last_failure_log = -60.0
        self._last_invalid_log = -60.0
        # Entries built by core are valid by construction; only another
        # enrichment plugin can set a field to a value of the wrong type.
        # The runtime turns this off when no such plugin is registered.
        self.check_types = True

    @hookimpl(tryfirst=True)
    def flare_enrich_entry(
        self, entry: FlareLogEntry, exc: BaseException | None
    ) -> None:
        if entry.fingerprint is None:
            entry.fingerprint = compute_fingerprint(entry, exc)

    @hookimpl(trylast=True, specname="flare_enrich_entry")
    def scrub_and_limit(
        self, entry: FlareLogEntry, scope: Scope | None, exc: BaseException | None
    ) -> None:
        """Scrub secrets and truncate fields, or withhold every free-text field.

        Unlike other plugins, a failure here must not let the entry through
        as it is, because the entry may still contain the request's secrets.
        Fields that plugins set to a value of the wrong type are reset first,
        so that every backend can write the entry.
        """
        try:
            # Lone surrogates make validation itself raise, so they go first.
            encode_safely(entry)
            invalid = _repair_types(entry, exc) if self.check_types else []
            if invalid:
                self._log_invalid(invalid)
            for error in entry.context.get("validation_errors", ()):
                if isinstance(error, dict) and any(
                    normalize_key(str(part)) in self.fields
                    for part in error.get("loc", ())
                ):
                    error["input"] = FILTERED
            self.scrubber.scrub_entry(entry)
            self.scrubber.limit_entry(entry)
        except Exception:  # noqa: BLE001 - store a safe remainder instead
            self._log_failure()
            _withhold(entry)

    def _log_invalid(self, fields: list[str]) -> None:
        now = time.monotonic()
        if now - self._last_invalid_log >= 60:
            logger.warning(
                "Flare reset the fields %s of an entry because an enrichment "
                "plugin set them to values of the wrong type (logged once a minute)",
                ", ".join(fields),
            )
            self._last_invalid_log = now

    def _log_failure(self) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= 60:
            logger.exception(
                "Flare could not scrub an entry (%d failures in the last minute); "
                "its message, stack trace and context were withheld",
                self._failures,
            )
            self._last_failure_log = now
            self._failures = 0


def _repair_types(entry: FlareLogEntry, exc: BaseException | None) -> list[str]:
    """Validate ``entry`` again and reset each invalid field to its default.

    Entries are mutable without validation, so a plugin may have set, say,
    ``http_status = "n/a"``. Valid values are kept in their validated form,
    such as an ISO timestamp string parsed to a datetime. Return the names
    of the reset fields, which are also listed in ``context["invalid_fields"]``.
    """
    from .models import FlareLogEntry

    values = dict(entry)
    try:
        FlareLogEntry.model_validate(values)
    except ValidationError as error:
        invalid = sorted(
            {str(item["loc"][0]) for item in error.errors() if item["loc"]}
        )
    else:
        invalid = []
    fields = FlareLogEntry.model_fields
    for name in invalid:
        values[name] = fields[name].get_default(call_default_factory=True)
    validated = FlareLogEntry.model_validate(values)
    for name in fields:
        setattr(entry, name, getattr(validated, name))
    if invalid:
        entry.context["invalid_fields"] = invalid
    if entry.fingerprint is None:
        entry.fingerprint = compute_fingerprint(entry, exc)
    return invalid


def _withhold(entry: FlareLogEntry) -> None:
    withheld = "[withheld: scrubbing failed]"
    entry.message = withheld
    entry.error = withheld if entry.error else None
    entry.stack_trace = None
    entry.context = {"scrub_failed": True}
    if entry.endpoint:
        entry.endpoint = entry.endpoint[:2048]
