"""Plugin discovery: the ``flare`` entry-point group and explicit objects."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .errors import FlareSetupError
from .hookspecs import PROJECT

__all__ = ["ENTRY_POINT_GROUP", "LoadedPlugin", "make_plugin_manager"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT


class LoadedPlugin:
    """A plugin as registered: its name, where it came from, and any load error."""

    def __init__(self, name: str, source: str, error: str | None = None) -> None:
        self.name = name
        self.source = source
        self.error = error

    def __repr__(self) -> str:
        state = f" failed: {self.error}" if self.error else ""
        return f"<LoadedPlugin {self.name} from {self.source}{state}>"


def make_plugin_manager(
    defaults: Iterable[tuple[str, Any]],
    extra: Iterable[Any],
    *,
    load_entry_points: bool = True,
) -> tuple[pluggy.PluginManager, list[LoadedPlugin]]:
    """Build the manager: core's defaults, installed plugins, then ``extra``.

    A plugin that fails to import or register is logged with its name and
    error and left out; the others still load.
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    loaded: list[LoadedPlugin] = []
    for name, plugin in defaults:
        manager.register(plugin, name=name)
        loaded.append(LoadedPlugin(name, "flare-core"))
    if load_entry_points:
        loaded.extend(_load_entry_points(manager))
    for index, plugin in enumerate(extra):
        _check_plugin(plugin)
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
        if manager.is_registered(plugin):
            continue
        manager.register(plugin, name=f"user:{name}")
        loaded.append(LoadedPlugin(f"user:{name}", "setup(plugins=...)"))
    manager.check_pending()
    return manager, loaded


def _check_plugin(plugin: Any) -> None:
    if isinstance(plugin, str):
        raise FlareSetupError(
            f"setup(plugins=...) takes plugin modules or objects, not names: got "
            f"{plugin!r}. Import it and pass the module, or publish it under the "
            "'flare' entry-point group."
        )
    if not any(name.startswith("flare_") for name in dir(plugin)):
        raise FlareSetupError(
            f"setup(plugins=...) got {plugin!r}, which implements no flare_* hook; "
            "a plugin defines functions such as flare_enrich_entry marked with "
            "@flare_core.hookimpl"
        )


def _load_entry_points(manager: pluggy.PluginManager) -> list[LoadedPlugin]:
    loaded = []
    seen: set[str] = set()
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        dist = entry_point.dist.name if entry_point.dist else entry_point.value
        try:
            plugin = entry_point.load()
            if manager.get_plugin(entry_point.name) is None:
                manager.register(plugin, name=entry_point.name)
        except Exception as exc:
            logger.exception(
                "Flare plugin %r (entry point %s from %s) failed to load; skipped",
                entry_point.name,
                entry_point.value,
                dist,
            )
            loaded.append(
                LoadedPlugin(entry_point.name, dist, f"{type(exc).__name__}: {exc}")
            )
            continue
        logger.info("Flare plugin %r loaded from %s", entry_point.name, dist)
        loaded.append(LoadedPlugin(entry_point.name, dist))
    return loaded
