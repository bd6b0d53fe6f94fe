"""The plugin contract: every hook a Flare plugin may implement.

A plugin is a module or an object with functions decorated by
``flare_core.hookimpl``. It registers through the ``flare`` entry-point group
or through ``setup(app, plugins=[...])``. An implementation may accept any
subset of a hook's arguments; argument names are public API and only ever
grow.

Hooks are grouped by phase: capture, enrichment, storage, auth, dashboard and
after-storage notification. Capture and enrichment hooks run on the request
path: they must do CPU work only, and must not await or block on I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Scope

    from .config import FlareConfig
    from .models import FlareLogEntry
    from .runtime import Flare
    from .storage import Storage

__all__ = ["hookimpl", "hookspec"]

PROJECT = "flare"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# Capture ------------------------------------------------------------------


@hookspec(firstresult=True)
def flare_should_capture(
    scope: Scope, status_code: int | None, exc: BaseException | None
) -> bool | None:
    """Decide whether a request's outcome becomes an entry.

    Called on the request path once a response's status is known to be in
    ``capture_status_codes``, or once an exception escapes the app; never
    for other requests.

    :param scope: The ASGI HTTP scope of the request. Read it, do not change it.
    :param status_code: The status sent to the client, or None when the app
        raised before it started a response.
    :param exc: The exception behind the outcome, if Flare saw one.
    :return: False to drop the entry, True to keep it, None to let the next
        plugin decide. The first non-None answer wins; with none, the entry
        is kept. flare-dashboard returns False for the dashboard's own paths.
    """


# Enrichment ---------------------------------------------------------------


@hookspec
def flare_enrich_entry(
    entry: FlareLogEntry,
    scope: Scope | None,
    exc: BaseException | None,
    config: FlareConfig,
) -> None:
    """Add, change or remove fields of an entry before it is buffered.

    Called for every entry, captured or pushed with ``push_log``, by every
    plugin that implements it. Set fields or context keys on ``entry``; what
    is set is what the storage writes. Core computes the fingerprint first
    (so a plugin may override ``entry.fingerprint``) and scrubs secrets and
    truncates oversized fields last (so what a plugin adds is scrubbed too).
    A plugin that raises is logged and skipped; the entry is still kept.

    :param entry: The mutable entry.
    :param scope: The ASGI scope of the request, or None for a pushed entry.
    :param exc: The exception behind the entry, if any.
    :param config: The active configuration.
    """


# Storage ------------------------------------------------------------------


@hookspec(firstresult=True)
def flare_storage(config: FlareConfig, backend: str) -> Storage | None:
    """Build the storage for a backend name, without connecting.

    ``setup()`` calls this with ``config.storage_backend`` when set;
    otherwise first with ``"redis"`` when ``redis_url`` is set, then with
    ``"sqlite"``. Return a ``Storage`` when ``backend`` is your plugin's name,
    else None. flare-sqlite builds ``"sqlite"``, flare-redis ``"redis"`` and
    core itself ``"memory"``. The pipeline calls ``start()`` from the app's
    lifespan.
    """


@hookspec
def flare_entries_stored(entries: Sequence[FlareLogEntry], config: FlareConfig) -> None:
    """Observe entries right after a batch was written.

    Called by the worker, off the request path, with entries whose ``id`` is
    set. Use it for alert sinks and metrics. An implementation may be a
    coroutine function; it is awaited. A plugin that raises is logged and
    the others still run.
    """


# Auth ---------------------------------------------------------------------


@hookspec(firstresult=True)
def flare_dashboard_auth(config: FlareConfig) -> Callable[..., Any] | None:
    """Return a FastAPI dependency that guards every dashboard route.

    Used only when ``config.dashboard_auth_dependency`` is unset: the user's
    own dependency always wins. The dependency raises ``HTTPException`` (401
    or 403) to reject a request. flare-zitadel returns one when its three
    ``zitadel_*`` options are set.
    """


# Dashboard ----------------------------------------------------------------


@hookspec
def flare_mount(
    app: FastAPI,
    config: FlareConfig,
    storage: Storage,
    auth: Callable[..., Any] | None,
    flare: Flare,
) -> None:
    """Add routes to the host app, once, during ``setup()``.

    :param app: The user's FastAPI application.
    :param storage: The storage the pipeline writes to (not started yet).
    :param auth: The dependency that guards the dashboard, or None when no
        auth is configured.
    :param flare: The runtime, for the buffer's drop count and health.

    flare-dashboard implements it to serve ``config.dashboard_path``.
    """
