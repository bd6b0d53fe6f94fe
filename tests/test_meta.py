"""Contracts stay complete: hooks documented, options listed, plugins load."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from flare_core import FlareConfig, hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(
    name
    for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("flare_")
)
DISTRIBUTION_PLUGINS = {
    "sqlite": "flare-sqlite",
    "redis": "flare-redis",
    "dashboard": "flare-dashboard",
    "zitadel": "flare-zitadel",
}


def test_hookspecs_exist() -> None:
    assert HOOKS == [
        "flare_dashboard_auth",
        "flare_enrich_entry",
        "flare_entries_stored",
        "flare_mount",
        "flare_should_capture",
        "flare_storage",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented(hook: str) -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert f"### {hook}" in guide


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()) >= 4


@pytest.mark.parametrize("option", sorted(FlareConfig.model_fields))
def test_option_in_readme(option: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"| `{option}` |" in readme
    assert f"`FLARE_{option.upper()}`" in readme


@pytest.mark.parametrize("name", sorted(DISTRIBUTION_PLUGINS))
def test_entry_point_loads(name: str) -> None:
    found = {point.name: point for point in entry_points(group="flare")}
    assert name in found
    point = found[name]
    assert point.dist is not None
    assert point.dist.name == DISTRIBUTION_PLUGINS[name]
    module = point.load()
    implemented = [hook for hook in HOOKS if hasattr(module, hook)]
    assert implemented, f"{point.value} implements no flare_* hook"


@pytest.mark.parametrize(
    "folder",
    [
        "flare_core",
        "flare_sqlite",
        "flare_redis",
        "flare_dashboard",
        "flare_zitadel",
        "fastapi_flare",
    ],
)
def test_distribution_has_readme_and_types(folder: str) -> None:
    package = folder
    assert (ROOT / folder / "README.md").read_text().strip()
    assert (ROOT / folder / "src" / package / "py.typed").exists()


def test_fastapi_flare_original_imports() -> None:
    import flare_core
    from fastapi_flare import FlareConfig as LegacyConfig
    from fastapi_flare import setup as legacy_setup
    from fastapi_flare.queue import push_log as legacy_push

    assert LegacyConfig is flare_core.FlareConfig
    assert legacy_setup is flare_core.setup
    assert legacy_push is flare_core.push_log
