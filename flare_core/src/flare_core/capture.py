"""The capture middleware: a pure ASGI layer outside the whole app.

``setup()`` places ``CaptureMiddleware`` outside Starlette's
``ServerErrorMiddleware``, so it sees the status the client really gets,
including responses from the app's own 500 handler, and every exception
that escapes the app. The app's exception handlers are wrapped (never
replaced) so that the exception behind a handled 4xx is known too.

On a request whose status is not captured, the middleware only watches the
status in ``send``, adds the request id header, and keeps the first
``max_body_bytes`` of what the app itself reads from ``receive``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .entries import RequestRecord, build_entry, from_background_task

if TYPE_CHECKING:
    from .runtime import Flare

__all__ = ["CURRENT_REQUEST", "EXCHANGE_KEY", "CaptureMiddleware", "Exchange"]

logger = logging.getLogger(__name__)

EXCHANGE_KEY = "flare.exchange"

# The request being served in this context, for push_log(); None outside one.
CURRENT_REQUEST: ContextVar[tuple[Scope, Exchange] | None] = ContextVar(
    "flare_current_request", default=None
)

# Request ids: a random per-process prefix and a counter, unique without
# calling uuid4 on every request.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


class Exchange:
    """The outcome of one request, filled in as its messages pass."""

    __slots__ = (
        "body",
        "body_size",
        "complete",
        "ended",
        "handled_exc",
        "handled_tb",
        "request_id",
        "response_body",
        "response_headers",
        "started",
        "status",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.ended: float | None = None
        self.status: int | None = None
        self.complete = False
        self.handled_exc: BaseException | None = None
        # Starlette 1.x clears a handled exception's __traceback__ after its
        # handler returns (starlette/_exception_handler.py), so the handler
        # wrapper keeps the traceback here for the stack trace and fingerprint.
        self.handled_tb: TracebackType | None = None
        self.request_id: str | None = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.response_body: list[bytes] | None = None
        self.response_headers: Any = None


class CaptureMiddleware:
    """Record every captured status and every escaping exception of an app."""

    def __init__(self, app: ASGIApp, flare: Flare) -> None:
        self.app = app
        self.flare = flare
        config = flare.config
        self.codes = config.capture_status_codes
        self.body_limit = config.max_body_bytes if config.capture_request_body else 0
        header = config.request_id_header
        self.id_header = header.lower().encode("latin-1") if header else None
        self._last_fault_log = 0.0
        self._faults_since_log = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        exchange = Exchange(time.perf_counter())
        scope[EXCHANGE_KEY] = exchange
        codes = self.codes
        id_header = self.id_header
        body_limit = self.body_limit

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                exchange.status = message["status"]
                if id_header is not None:
                    message = self._add_request_id(message, scope, exchange)
                if exchange.status in codes:
                    exchange.response_body = []
                    exchange.response_headers = message.get("headers")
            elif kind == "http.response.body":
                if exchange.response_body is not None:
                    _keep_head(exchange.response_body, message.get("body", b""), 4096)
                if not message.get("more_body", False):
                    exchange.complete = True
                    exchange.ended = time.perf_counter()
            await send(message)

        if body_limit:

            async def receive_wrapper() -> Message:
                message = await receive()
                if (
                    message["type"] == "http.request"
                    and exchange.body_size < body_limit
                ):
                    chunk = message.get("body", b"")
                    if chunk:
                        room = body_limit - exchange.body_size
                        exchange.body.append(
                            chunk[:room] if len(chunk) > room else chunk
                        )
                        exchange.body_size += min(len(chunk), room)
                return message

            app_receive: Receive = receive_wrapper
        else:
            app_receive = receive

        # push_log() called while this request runs links its entry to it.
        token = CURRENT_REQUEST.set((scope, exchange))
        try:
            await self.app(scope, app_receive, send_wrapper)
        except Exception as exc:
            if exchange.status in codes and _after_response(exchange, exc):
                # The response was an error of its own before a background
                # task failed, so both are stored.
                self._capture(scope, exchange, None)
            self._capture(scope, exchange, exc)
            raise
        finally:
            CURRENT_REQUEST.reset(token)
        if exchange.status in codes:
            self._capture(scope, exchange, None)

    def _add_request_id(
        self, message: Message, scope: Scope, exchange: Exchange
    ) -> Message:
        headers = list(message.get("headers", ()))
        name = self.id_header
        for key, value in headers:
            if key.lower() == name:
                exchange.request_id = value.decode("latin-1")
                return message
        request_id = (
            exchange.request_id
            or _request_id_from(scope, name)  # type: ignore[arg-type]
            or new_request_id()
        )
        exchange.request_id = request_id
        headers.append((name, request_id.encode("latin-1")))
        return {**message, "headers": headers}

    def _capture(
        self, scope: Scope, exchange: Exchange, raised: BaseException | None
    ) -> None:
        """Build and buffer an entry; a fault here is logged, never raised."""
        try:
            if exchange.ended is None:
                exchange.ended = time.perf_counter()
            if exchange.request_id is None and self.id_header is not None:
                exchange.request_id = _request_id_from(scope, self.id_header)
            exc = raised if raised is not None else exchange.handled_exc
            restore = raised is None and exc is not None and exc.__traceback__ is None
            if restore:
                exc.__traceback__ = exchange.handled_tb  # type: ignore[union-attr]
            try:
                self._record(scope, exchange, raised, exc)
            finally:
                if restore:
                    exc.__traceback__ = None  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - capture must never break the request
            self._log_fault()

    def _record(
        self,
        scope: Scope,
        exchange: Exchange,
        raised: BaseException | None,
        exc: BaseException | None,
    ) -> None:
        flare = self.flare
        if flare.should_capture(scope, exchange.status, exc) is False:
            return
        record = RequestRecord(scope, exchange, flare.config)
        entry = build_entry(record, raised=raised, handled=exchange.handled_exc)
        flare.enrich(entry, scope, exc)
        flare.buffer.put(entry)

    def _log_fault(self) -> None:
        now = time.monotonic()
        self._faults_since_log += 1
        if now - self._last_fault_log >= 60:
            logger.exception(
                "Flare failed to capture a request (%d failures in the last minute); "
                "the request itself was not affected",
                self._faults_since_log,
            )
            self._last_fault_log = now
            self._faults_since_log = 0


def _after_response(exchange: Exchange, exc: BaseException) -> bool:
    return exchange.complete and from_background_task(exc)


def _request_id_from(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")[:128]
            return text
    return None


def _keep_head(chunks: list[bytes], chunk: bytes, limit: int) -> None:
    size = sum(len(part) for part in chunks)
    if size < limit and chunk:
        chunks.append(chunk[: limit - size])


def current_request_fields(header: str | None) -> dict[str, Any]:
    """Return the request fields for an entry pushed while a request runs.

    The request id is the one the response carries: the request's own
    header, or an id generated now and sent with the response later.
    """
    current = CURRENT_REQUEST.get()
    if current is None:
        return {}
    scope, exchange = current
    if exchange.request_id is None and header:
        name = header.lower().encode("latin-1")
        exchange.request_id = _request_id_from(scope, name) or new_request_id()
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return {
        "request_id": exchange.request_id,
        "endpoint": str(scope.get("path", "")) or None,
        "route": template if isinstance(template, str) else None,
        "http_method": str(scope.get("method", "")) or None,
    }
