"""Manual entries: ``push_log`` from async code, ``push_log_sync`` from anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .capture import current_request_fields
from .errors import FlareSetupError
from .models import FlareLogEntry, Level

if TYPE_CHECKING:
    from .config import FlareConfig
    from .runtime import Flare

__all__ = ["push_log", "push_log_sync"]


def _runtime(config: FlareConfig | Flare) -> Flare:
    from .runtime import Flare

    if isinstance(config, Flare):
        return config
    runtime = getattr(config, "_runtime", None)
    if runtime is None:
        raise FlareSetupError(
            "push_log() got a FlareConfig that no app was set up with; "
            "pass the config given to setup(app, config=...) or the object "
            "setup() returned"
        )
    return runtime  # type: ignore[no-any-return]


def push_log_sync(
    config: FlareConfig | Flare,
    *,
    level: Level = "ERROR",
    event: str,
    message: str,
    context: dict[str, Any] | None = None,
    exc: BaseException | None = None,
    **fields: Any,
) -> FlareLogEntry:
    """Buffer a manual entry; safe from threads and ``def`` endpoints.

    The entry passes through enrichment (fingerprint, scrubbing, limits) like
    a captured one and is written by the worker. ``fields`` are other
    ``FlareLogEntry`` fields, such as ``endpoint`` or ``http_status``. With
    ``exc``, the entry carries its type and stack trace.
    """
    flare = _runtime(config)
    # An entry that names its own endpoint describes some other request, so it
    # takes only the current request's id.
    explicit = any(name in fields for name in ("endpoint", "route", "http_method"))
    for name, value in current_request_fields(flare.config.request_id_header).items():
        if name == "request_id" or not explicit:
            fields.setdefault(name, value)
    try:
        entry = FlareLogEntry(
            level=level,
            event=event,
            message=message,
            context={str(key): value for key, value in (context or {}).items()},
            **fields,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ValueError(f"push_log() got invalid arguments: {problems}") from None
    if exc is not None:
        from .tracebacks import exception_summary, exception_type_name, format_exception

        entry.exception_type = entry.exception_type or exception_type_name(exc)
        entry.error = entry.error or exception_summary(exc)
        entry.stack_trace = entry.stack_trace or format_exception(
            exc, flare.config.max_stack_frames
        )
    flare.enrich(entry, None, exc)
    flare.buffer.put(entry)
    return entry


async def push_log(
    config: FlareConfig | Flare,
    *,
    level: Level = "ERROR",
    event: str,
    message: str,
    context: dict[str, Any] | None = None,
    exc: BaseException | None = None,
    **fields: Any,
) -> FlareLogEntry:
    """Buffer a manual entry from async code; it never waits for storage."""
    return push_log_sync(
        config,
        level=level,
        event=event,
        message=message,
        context=context,
        exc=exc,
        **fields,
    )
