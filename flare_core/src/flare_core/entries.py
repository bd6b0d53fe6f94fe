"""Turn one captured request into a ``FlareLogEntry``."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from .tracebacks import (
    exception_summary,
    exception_text,
    exception_type_name,
    format_exception,
)

if TYPE_CHECKING:
    from .capture import Exchange
    from .config import FlareConfig
    from .models import FlareLogEntry

__all__ = ["RequestRecord", "build_entry", "client_ip", "from_background_task"]

_MAX_HEADERS = 64
_TEXT_TYPES = ("json", "text/", "x-www-form-urlencoded", "xml", "graphql")


def _text(raw: bytes) -> str:
    """Decode request bytes without ever failing: UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _clean(text: str) -> str:
    """Replace lone surrogates with backslash escapes, since no storage encodes them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@lru_cache(maxsize=64)
def _networks(proxies: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in proxies)


def _trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(scope: Scope, headers: dict[str, str], trusted: list[str]) -> str | None:
    """Return the socket peer, or, behind trusted proxies, the nearest untrusted hop.

    ``X-Forwarded-For`` is read right to left and only while each hop is a
    trusted proxy, so a value the client wrote itself is never believed.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else None
    if not trusted or peer is None:
        return peer
    networks = _networks(tuple(trusted))
    if not _trusted(peer, networks):
        return peer
    forwarded = headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            # A trusted proxy appends the address of its own peer, so a hop
            # that is no address comes from a misconfigured proxy. Use the
            # socket peer instead.
            return hop if _is_address(hop) else peer
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class RequestRecord:
    """The parts of a request an entry needs, read once from the scope."""

    def __init__(self, scope: Scope, exchange: Exchange, config: FlareConfig) -> None:
        self.scope = scope
        self.exchange = exchange
        self.config = config
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", ())[:_MAX_HEADERS]:
            name = key.decode("latin-1").lower()
            headers[name] = (
                value.decode("latin-1")
                if name not in headers
                else (headers[name] + ", " + value.decode("latin-1"))
            )
        self.headers = headers

    @property
    def path(self) -> str:
        return _clean(str(self.scope.get("path", "")))

    def route(self) -> str | None:
        route = self.scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not isinstance(template, str):
            return None
        root = str(self.scope.get("root_path", ""))
        app_root = str(self.scope.get("app_root_path", root))
        mount = root[len(app_root) :] if root.startswith(app_root) else ""
        return _clean(mount + template)

    def request_context(self) -> dict[str, Any]:
        scope = self.scope
        query = scope.get("query_string", b"")
        info: dict[str, Any] = {
            "headers": {name: _clean(value) for name, value in self.headers.items()},
            "query_string": _clean(_text(query)) if query else "",
        }
        content_type = self.headers.get("content-type", "")
        if content_type:
            info["content_type"] = content_type
        body = b"".join(self.exchange.body)
        if body:
            if any(kind in content_type for kind in _TEXT_TYPES) or not content_type:
                info["body"] = _clean(_text(body))
            else:
                info["body"] = f"<{len(body)} bytes of {content_type.split(';')[0]}>"
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > len(body):
                info["body_truncated"] = True
        return info


def build_entry(
    record: RequestRecord,
    *,
    raised: BaseException | None,
    handled: BaseException | None,
) -> FlareLogEntry:
    """Build the entry for a captured request, before enrichment."""
    from .models import FlareLogEntry

    exchange = record.exchange
    config = record.config
    scope = record.scope
    status = exchange.status
    exc = raised if raised is not None else handled
    fields: dict[str, Any] = {}

    if raised is not None and exchange.complete and from_background_task(raised):
        # The response was already sent when a background task failed.
        event, level = "background_task_error", "ERROR"
        fields["context"] = {"background": True}
    elif raised is not None:
        event, level = "unhandled_exception", "ERROR"
        status = status or 500
    elif isinstance(handled, RequestValidationError):
        event, level = "validation_error", "WARNING"
    elif isinstance(handled, StarletteHTTPException):
        event, level = "http_exception", _level(status)
    elif handled is not None:
        event, level = "handled_exception", _level(status)
    else:
        event, level = "http_error_response", _level(status)

    message, error = _describe(exc, exchange, status)
    context: dict[str, Any] = fields.get("context", {})
    if isinstance(handled, RequestValidationError) and raised is None:
        context["validation_errors"] = _validation_errors(handled)
        message = _validation_summary(context["validation_errors"])
        error = message
    context["request"] = record.request_context()

    stack = None
    if exc is not None and not isinstance(
        exc, StarletteHTTPException | RequestValidationError
    ):
        stack = format_exception(exc, config.max_stack_frames)

    duration = None
    if exchange.ended is not None:
        duration = round((exchange.ended - exchange.started) * 1000, 3)

    return FlareLogEntry(
        level=level,
        event=event,
        message=_clean(message),
        request_id=exchange.request_id,
        endpoint=record.path,
        route=record.route(),
        http_method=str(scope.get("method", "")) or None,
        http_status=status,
        ip_address=client_ip(scope, record.headers, config.trusted_proxies),
        duration_ms=duration,
        error=_clean(error) if error else None,
        exception_type=exception_type_name(exc) if exc is not None else None,
        stack_trace=stack,
        context=context,
    )


def from_background_task(exc: BaseException) -> bool:
    """Tell whether ``exc`` passed through a Starlette background task."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "starlette.background":
            return True
        tb = tb.tb_next
    return False


def _level(status: int | None) -> str:
    return "ERROR" if status is None or status >= 500 else "WARNING"


def _describe(
    exc: BaseException | None, exchange: Exchange, status: int | None
) -> tuple[str, str | None]:
    """Return the entry's message and error text."""
    if isinstance(exc, StarletteHTTPException):
        detail = (
            exc.detail
            if isinstance(exc.detail, str)
            else json.dumps(exc.detail, default=str)
        )
        return detail, f"HTTPException {exc.status_code}: {detail}"
    if exc is not None:
        return (exception_text(exc) or type(exc).__name__), exception_summary(exc)
    body_detail = _response_detail(exchange)
    if body_detail:
        return body_detail, body_detail
    return _reason(status), None


def _reason(status: int | None) -> str:
    if status is None:
        return "No response"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _response_detail(exchange: Exchange) -> str | None:
    """Read ``detail`` (or ``message``/``error``) from a JSON error body.

    A plain-text body is used as it is. Any other body, such as HTML or
    binary data, gives no detail.
    """
    chunks = exchange.response_body
    if not chunks:
        return None
    body = b"".join(chunks)
    content_type = _response_content_type(exchange)
    try:
        parsed = json.loads(body)
    except ValueError:
        if content_type and not content_type.startswith("text/plain"):
            return None
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        return text[:500] if text and not text.startswith("<") else None
    if isinstance(parsed, dict):
        for key in ("detail", "message", "error"):
            value = parsed.get(key)
            if value:
                return (
                    value if isinstance(value, str) else json.dumps(value, default=str)
                )
    return None


def _response_content_type(exchange: Exchange) -> str:
    for key, value in exchange.response_headers or ():
        if key.lower() == b"content-type":
            return str(value.decode("latin-1")).lower()
    return ""


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors()[:50]:
        item = {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        if "input" in error:
            item["input"] = json.loads(json.dumps(error["input"], default=str))
        errors.append(item)
    return errors


def _validation_summary(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:10]:
        loc = [
            part
            for part in error["loc"]
            if part not in ("body", "query", "path", "header")
        ]
        where = ".".join(loc) or ".".join(error["loc"]) or "request"
        # "msg (field)" rather than "field: msg", which reads as a key-value
        # pair and would be scrubbed for a field named like a secret.
        parts.append(f"{error['msg']} ({where})")
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return "Request validation failed: " + "; ".join(parts) + more
