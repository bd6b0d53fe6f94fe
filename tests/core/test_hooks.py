"""The hook contract: every hookspec is exercised by a test, and each hook's
after-storage, auth and mount behaviour."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from flare_core import (
    Flare,
    FlareConfig,
    FlareLogEntry,
    hookimpl,
    hookspecs,
    push_log,
    setup,
)

from . import test_pipeline, test_plugins
from .helpers import serve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _admin_only() -> None:
    """A stand-in dashboard dependency."""


class Recorder:
    """Implements the after-storage, auth and mount hooks and records the calls."""

    def __init__(self) -> None:
        self.stored: list[str | None] = []
        self.mounted: list[dict[str, Any]] = []

    @hookimpl
    async def flare_entries_stored(self, entries: Sequence[FlareLogEntry]) -> None:
        self.stored.extend(entry.id for entry in entries)

    @hookimpl
    def flare_dashboard_auth(self, config: FlareConfig) -> Callable[..., Any] | None:
        return _admin_only

    @hookimpl
    def flare_mount(self, app: FastAPI, storage: Any, auth: Any, flare: Flare) -> None:
        self.mounted.append(
            {"app": app, "storage": storage, "auth": auth, "flare": flare}
        )


class RaisingSink:
    @hookimpl
    def flare_entries_stored(self) -> None:
        raise RuntimeError("sink is down")


def _build(plugins: list[Any], **options: Any) -> tuple[FastAPI, Flare]:
    app = FastAPI()
    flare = setup(
        app,
        load_entry_points=False,
        storage_backend="memory",
        plugins=plugins,
        **options,
    )
    return app, flare


async def test_entries_stored_sees_ids() -> None:
    recorder = Recorder()
    app, flare = _build([recorder])
    async with serve(app):
        await push_log(flare, event="job", message="first")
        await push_log(flare, event="job", message="second")

    assert recorder.stored == ["1", "2"]


async def test_raising_sink_isolated(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    app, flare = _build([recorder, RaisingSink()])
    with caplog.at_level(logging.WARNING, logger="flare_core"):
        async with serve(app):
            await push_log(flare, event="job", message="first")
            await flare.worker.flush()
            await push_log(flare, event="job", message="second")

    faults = [r for r in caplog.records if "flare_entries_stored" in r.getMessage()]

    assert recorder.stored == ["1", "2"]
    assert len(faults) == 1
    assert "RaisingSink" in faults[0].getMessage()


def test_dashboard_auth_from_plugin() -> None:
    _, flare = _build([Recorder()])

    assert flare.auth is _admin_only


def test_dashboard_auth_config_wins() -> None:
    def own_dependency() -> None:
        """The user's own dependency."""

    _, flare = _build([Recorder()], dashboard_auth_dependency=own_dependency)

    assert flare.auth is own_dependency


def test_mount_called_once_with_runtime() -> None:
    recorder = Recorder()
    app, flare = _build([recorder])

    assert len(recorder.mounted) == 1
    assert recorder.mounted[0] == {
        "app": app,
        "storage": flare.storage,
        "auth": _admin_only,
        "flare": flare,
    }


# Each hook and the tests that call it through a real setup().
HOOK_TESTS: dict[str, list[Callable[..., Any]]] = {
    "flare_should_capture": [
        test_plugins.test_should_capture_false_vetoes,
        test_plugins.test_raising_veto_isolated,
    ],
    "flare_enrich_entry": [
        test_plugins.test_enrich_plugin_changes_entry,
        test_plugins.test_raising_enricher_isolated,
        test_plugins.test_plugin_overrides_fingerprint,
    ],
    "flare_storage": [test_pipeline.test_overflow_drops_oldest_and_counts],
    "flare_entries_stored": [test_entries_stored_sees_ids, test_raising_sink_isolated],
    "flare_dashboard_auth": [
        test_dashboard_auth_from_plugin,
        test_dashboard_auth_config_wins,
    ],
    "flare_mount": [test_mount_called_once_with_runtime],
}


def _hookspec_names() -> list[str]:
    return sorted(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("flare_")
    )


def test_every_hook_has_tests() -> None:
    assert sorted(HOOK_TESTS) == _hookspec_names()


@pytest.mark.parametrize("hook", sorted(HOOK_TESTS))
def test_hook_tests_implement_hook(hook: str) -> None:
    for test in HOOK_TESTS[hook]:
        module = inspect.getmodule(test)
        assert module is not None
        assert f"def {hook}(" in inspect.getsource(module), (hook, test.__name__)


@pytest.mark.skipif(not DOCS.exists(), reason="docs/plugins.md is not written yet")
@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hook_documented(hook: str) -> None:
    assert hook in DOCS.read_text()
