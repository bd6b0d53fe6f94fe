"""``setup(app)``: build the pipeline from the installed plugins and attach it."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Scope

from . import memory
from .capture import EXCHANGE_KEY, CaptureMiddleware
from .config import FlareConfig
from .enrich import CoreEnrichment
from .errors import FlareSetupError
from .models import FlareLogEntry, Stats
from .pipeline import EntryBuffer, Worker
from .plugins import make_plugin_manager
from .storage import Storage

__all__ = ["Flare", "setup"]

logger = logging.getLogger(__name__)

CORE_ENRICHMENT = "flare-core-enrichment"

_INSTALLS: dict[str, str] = {
    "sqlite": "flare-sqlite",
    "redis": "flare-redis",
}


class Flare:
    """The running pipeline of one app: plugins, buffer, worker and storage."""

    def __init__(
        self,
        config: FlareConfig,
        plugins: Sequence[Any] = (),
        *,
        load_entry_points: bool = True,
    ) -> None:
        self.config = config
        self.enrichment = CoreEnrichment(config)
        self.pm, self.plugins = make_plugin_manager(
            [(CORE_ENRICHMENT, self.enrichment), ("flare-core-memory", memory)],
            plugins,
            load_entry_points=load_entry_points,
        )
        self.backend, self.storage = self._build_storage()
        self.buffer = EntryBuffer(config.buffer_size, config.worker_batch_size)
        self.worker = Worker(
            self.buffer,
            self.storage,
            interval=config.worker_interval_seconds,
            batch_size=config.worker_batch_size,
            max_entries=config.max_entries,
            retention=timedelta(hours=config.retention_hours),
            notify=self._entries_stored,
        )
        self.auth = (
            config.dashboard_auth_dependency
            or self.pm.hook.flare_dashboard_auth(config=config)
        )
        self._enrichers = self._plugin_calls("flare_enrich_entry")
        self.enrichment.check_types = any(
            name != CORE_ENRICHMENT for name, _, _ in self._enrichers
        )
        self._vetoes = self._plugin_calls("flare_should_capture")
        self._last_plugin_log: dict[str, float] = {}
        if config._runtime is not None:
            raise FlareSetupError(
                "This FlareConfig is already used by another setup(); create one "
                "FlareConfig per app, because push_log(config) finds the app by it"
            )
        config._runtime = self

    # Construction ---------------------------------------------------------

    def _build_storage(self) -> tuple[str, Storage]:
        config = self.config
        if config.storage_backend:
            candidates = [config.storage_backend]
        elif config.redis_url:
            candidates = ["redis", "sqlite"]
        else:
            candidates = ["sqlite"]
        for backend in candidates:
            storage = self.pm.hook.flare_storage(config=config, backend=backend)
            if storage is not None:
                if backend != candidates[0]:
                    logger.warning(
                        "redis_url is set but flare-redis is not installed; "
                        "Flare stores entries in SQLite at %s instead",
                        config.sqlite_path,
                    )
                logger.info("Flare stores entries with the %r backend", backend)
                return backend, storage
        requested = candidates[0]
        package = _INSTALLS.get(requested)
        advice = (
            f"install it with `pip install {package}`"
            if package
            else "install the plugin that provides it, or pick sqlite, redis or memory"
        )
        raise FlareSetupError(
            f"No Flare storage plugin provides backend {requested!r}: {advice}. "
            "Set storage_backend='memory' to keep entries in process for tests."
        )

    def _plugin_calls(
        self, hook_name: str
    ) -> list[tuple[str, Callable[..., Any], list[str]]]:
        """List a hook's implementations in call order, for calling one by one."""
        caller = getattr(self.pm.hook, hook_name)
        calls = []
        for impl in reversed(caller.get_hookimpls()):
            calls.append((impl.plugin_name, impl.function, list(impl.argnames)))
        return calls

    # Request path ---------------------------------------------------------

    def should_capture(
        self, scope: Scope, status_code: int | None, exc: BaseException | None
    ) -> bool | None:
        """Call each veto plugin in turn and return the first True or False result.

        A plugin that raises is logged and skipped, so it neither loses the
        entry nor hides the results of the plugins after it.
        """
        args = {"scope": scope, "status_code": status_code, "exc": exc}
        for name, function, argnames in self._vetoes:
            try:
                result = function(*[args[arg] for arg in argnames])
            except Exception:  # noqa: BLE001 - isolate plugins from each other
                self._plugin_failed("flare_should_capture", name)
                continue
            if result is not None:
                return bool(result)
        return None

    def enrich(
        self, entry: FlareLogEntry, scope: Scope | None, exc: BaseException | None
    ) -> None:
        """Run every enrichment plugin; one that raises is logged and skipped."""
        args = {"entry": entry, "scope": scope, "exc": exc, "config": self.config}
        for name, function, argnames in self._enrichers:
            try:
                function(*[args[arg] for arg in argnames])
            except Exception:  # noqa: BLE001 - isolate plugins from each other
                self._plugin_failed("flare_enrich_entry", name)

    def _plugin_failed(self, hook: str, plugin: str) -> None:
        now = time.monotonic()
        key = f"{hook}:{plugin}"
        if now - self._last_plugin_log.get(key, -60.0) >= 60:
            self._last_plugin_log[key] = now
            logger.exception(
                "Flare plugin %r failed in %s; skipped (logged once a minute)",
                plugin,
                hook,
            )

    # Worker side ----------------------------------------------------------

    async def _entries_stored(self, entries: Sequence[FlareLogEntry]) -> None:
        for name, function, argnames in self._plugin_calls("flare_entries_stored"):
            args = {"entries": entries, "config": self.config}
            try:
                result = function(*[args[arg] for arg in argnames])
                if hasattr(result, "__await__"):
                    await result
            except Exception:  # noqa: BLE001 - a sink must not stop the worker
                self._plugin_failed("flare_entries_stored", name)

    async def start(self) -> None:
        """Start the worker, after starting the storage when it must start at once.

        With ``storage_strict_startup``, a storage that cannot start raises here
        and so fails the app's startup.
        """
        if self.config.storage_strict_startup:
            await self.storage.start()
            self.worker.storage_ready = True
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop(self.config.flush_timeout_seconds)
        try:
            await self.storage.close()
        except Exception:
            logger.warning(
                "Flare storage %r failed to close", self.backend, exc_info=True
            )
        self.worker.storage_ready = False

    async def stats(self) -> Stats:
        stats = await self.storage.stats()
        stats.dropped += self.buffer.dropped
        return stats

    def health(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "worker_running": self.worker.running,
            "storage_ready": self.worker.storage_ready,
            "last_error": self.worker.last_error,
            "buffered": len(self.buffer),
            "dropped": self.buffer.dropped,
            "written": self.worker.written,
            "rejected": self.worker.rejected,
            "plugins": [
                {"name": plugin.name, "source": plugin.source, "error": plugin.error}
                for plugin in self.plugins
            ],
        }

    # Installation ---------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        _wrap_middleware_stack(app, self)
        _wrap_lifespan(app, self)
        self.pm.hook.flare_mount(
            app=app,
            config=self.config,
            storage=self.storage,
            auth=self.auth,
            flare=self,
        )


def setup(
    app: FastAPI,
    config: FlareConfig | None = None,
    *,
    plugins: Iterable[Any] = (),
    load_entry_points: bool = True,
    **options: Any,
) -> Flare:
    """Attach Flare to ``app`` and return the runtime.

    ``options`` are ``FlareConfig`` fields, for example ``redis_url=...``;
    they may not be combined with ``config``. With ``load_entry_points=False``
    only core's own plugins and ``plugins`` are used, not the installed
    ``flare`` entry points. Calling ``setup`` twice on one app returns the
    first runtime and starts nothing new.
    """
    existing = getattr(app.state, "flare", None)
    if isinstance(existing, Flare):
        logger.warning(
            "setup() was called again for the same app; keeping the first Flare"
        )
        return existing
    if config is not None and options:
        raise FlareSetupError(
            f"setup() got both config= and options {sorted(options)}; "
            "put the options into FlareConfig(...) instead"
        )
    config = config if config is not None else FlareConfig(**options)
    flare = Flare(config, list(plugins), load_entry_points=load_entry_points)
    app.state.flare = flare
    flare.install(app)
    return flare


def _wrap_middleware_stack(app: FastAPI, flare: Flare) -> None:
    """Put capture outside the whole stack and wrap the app's exception handlers."""
    build = app.build_middleware_stack

    def build_with_capture() -> ASGIApp:
        handlers = app.exception_handlers
        app.exception_handlers = {
            key: value if key in (500, Exception) else _noting_handler(value)
            for key, value in handlers.items()
        }
        try:
            stack = build()
        finally:
            app.exception_handlers = handlers
        return CaptureMiddleware(stack, flare)

    app.build_middleware_stack = build_with_capture  # type: ignore[method-assign]


def _noting_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an exception handler so that capture learns which exception it handled."""

    def note(request: Any, exc: BaseException) -> None:
        exchange = request.scope.get(EXCHANGE_KEY)
        if exchange is not None:
            exchange.handled_exc = exc
            exchange.handled_tb = exc.__traceback__

    if is_async_callable(handler):

        async def noting_async(request: Any, exc: Exception) -> Any:
            note(request, exc)
            return await handler(request, exc)

        return noting_async

    def noting_sync(request: Any, exc: Exception) -> Any:
        note(request, exc)
        return handler(request, exc)

    return noting_sync


def is_async_callable(target: Any) -> bool:
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    return callable(target) and inspect.iscoroutinefunction(target.__call__)


def _wrap_lifespan(app: FastAPI, flare: Flare) -> None:
    """Run the worker inside the app's lifespan, whatever lifespan the app has."""
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan_with_flare(target: Any) -> AsyncIterator[Any]:
        await flare.start()
        try:
            async with original(target) as state:
                yield state
        finally:
            await flare.stop()

    app.router.lifespan_context = lifespan_with_flare
