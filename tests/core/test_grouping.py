"""Fingerprints: one fault is one group, and different faults split."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from flare_core import Flare, FlareLogEntry, push_log, setup
from flare_core.enrich import compute_fingerprint

from .helpers import serve, stored

MODULE_V1 = """
def load(order_id):
    raise KeyError(f"order {order_id} vanished")


def other(order_id):
    raise KeyError(f"order {order_id} vanished")
"""

# The same functions after unrelated lines were added above them.
MODULE_V2 = '''
"""Orders."""

import os

LIMIT = 3


def helper():
    return os.sep


def load(order_id):
    raise KeyError(f"order {order_id} vanished")


def other(order_id):
    raise KeyError(f"order {order_id} vanished")
'''


def _import_version(
    source: str, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    directory.mkdir()
    (directory / "flare_orders_fixture.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(directory))
    sys.modules.pop("flare_orders_fixture", None)
    module = importlib.import_module("flare_orders_fixture")
    sys.modules.pop("flare_orders_fixture", None)
    return module


def _fingerprint_of(function: object, order_id: int) -> tuple[str, int]:
    try:
        function(order_id)  # type: ignore[operator]
    except KeyError as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        assert tb is not None
        return compute_fingerprint(FlareLogEntry(), exc), tb.tb_lineno
    raise AssertionError("no KeyError raised")


def test_moved_lines_same_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = _import_version(MODULE_V1, tmp_path / "v1", monkeypatch)
    v2 = _import_version(MODULE_V2, tmp_path / "v2", monkeypatch)

    first, line_v1 = _fingerprint_of(v1.load, 1)
    second, line_v2 = _fingerprint_of(v2.load, 2)

    assert line_v1 != line_v2
    assert first == second


def test_other_call_site_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _import_version(MODULE_V1, tmp_path / "v1", monkeypatch)

    assert _fingerprint_of(module.load, 1)[0] != _fingerprint_of(module.other, 1)[0]


def test_other_exception_type_splits() -> None:
    def fail(kind: type[Exception]) -> str:
        try:
            raise kind("same message")
        except Exception as exc:  # noqa: BLE001 - any kind the test raises
            return compute_fingerprint(FlareLogEntry(), exc)

    assert fail(KeyError) != fail(ValueError)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("payment 1042 failed", "payment 77 failed"),
        (
            "user 3f2b6c1e-8a4d-4c2e-9b7a-1d2e3f4a5b6c not found",
            "user 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d not found",
        ),
        ("object 5f1d7a9c3b2e8d4f missing", "object 0a9b8c7d6e5f4a3b missing"),
        ("bad value 'alpha' for mode", "bad value 'beta-2' for mode"),
        ('field "x" rejected', 'field "yy" rejected'),
        ("took 1.5 s", "took 20.25 s"),
    ],
)
def test_variable_parts_same_group(first: str, second: str) -> None:
    one = compute_fingerprint(FlareLogEntry(event="job", message=first), None)
    two = compute_fingerprint(FlareLogEntry(event="job", message=second), None)

    assert one == two


def test_different_messages_split() -> None:
    one = compute_fingerprint(
        FlareLogEntry(event="job", message="payment failed"), None
    )
    two = compute_fingerprint(FlareLogEntry(event="job", message="refund failed"), None)

    assert one != two


def _build() -> tuple[FastAPI, Flare]:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> None:
        raise HTTPException(404, detail=f"item {item_id} not found")

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> None:
        raise KeyError(f"order {order_id} vanished")

    return app, setup(app, load_entry_points=False, storage_backend="memory")


async def test_route_404s_one_group() -> None:
    app, flare = _build()
    async with serve(app) as client:
        await client.get("/items/1")
        await client.get("/items/2")
        await client.get("/orders/3")
        await client.get("/orders/4")
    entries = await stored(flare)
    fingerprints = [entry.fingerprint for entry in entries]

    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[2] == fingerprints[3]
    assert fingerprints[0] != fingerprints[2]
    assert len(flare.storage.groups) == 2  # type: ignore[attr-defined]


async def test_unmatched_paths_one_group() -> None:
    app, flare = _build()
    async with serve(app) as client:
        await client.get("/files/123/raw")
        await client.get("/wp-login.php")
        await client.get("/no-such-page-1000")
        await client.post("/no-such-page-1000")
    entries = await stored(flare)

    assert entries[0].fingerprint == entries[1].fingerprint
    assert entries[1].fingerprint == entries[2].fingerprint
    assert entries[2].fingerprint != entries[3].fingerprint


async def test_pushed_messages_grouped() -> None:
    app, flare = _build()
    async with serve(app):
        await push_log(flare, event="sync", message="sync of account 1001 failed")
        await push_log(flare, event="sync", message="sync of account 2002 failed")
        await push_log(flare, event="export", message="sync of account 2002 failed")
    entries = await stored(flare)

    assert entries[0].fingerprint == entries[1].fingerprint
    assert entries[1].fingerprint != entries[2].fingerprint


def test_fingerprint_without_traceback() -> None:
    one = compute_fingerprint(FlareLogEntry(), ValueError("row 5 bad"))
    two = compute_fingerprint(FlareLogEntry(), ValueError("row 6 bad"))

    assert one == two


async def test_handled_exceptions_split_by_site() -> None:
    app = FastAPI()

    @app.exception_handler(ValueError)
    async def on_value_error(request: object, exc: ValueError) -> JSONResponse:
        return JSONResponse({"invalid": True}, status_code=400)

    @app.get("/parse-a/{text}")
    async def parse_a(text: str) -> int:
        return int(text)

    @app.get("/parse-b/{text}")
    async def parse_b(text: str) -> int:
        return int(text)

    flare = setup(app, load_entry_points=False, storage_backend="memory")
    async with serve(app) as client:
        for path in ("/parse-a/x", "/parse-a/y", "/parse-b/x"):
            assert (await client.get(path)).status_code == 400
    entries = await stored(flare)

    assert entries[0].fingerprint == entries[1].fingerprint
    assert entries[0].fingerprint != entries[2].fingerprint


def _caller_in(module_name: str) -> Callable[[Callable[[], None]], None]:
    """Return a function that calls its argument, defined in ``module_name``."""
    namespace: dict[str, Any] = {"__name__": module_name}
    exec("def call(function):\n    function()\n", namespace)
    return namespace["call"]  # type: ignore[no-any-return]


def _fingerprint_through(caller: Callable[[Callable[[], None]], None]) -> str:
    def fail() -> None:
        raise LookupError("report 7")

    try:
        caller(fail)
    except LookupError as exc:
        return compute_fingerprint(FlareLogEntry(), exc)
    raise AssertionError("no LookupError raised")


def test_framework_frames_ignored() -> None:
    first = _fingerprint_through(_caller_in("starlette.routing"))
    second = _fingerprint_through(_caller_in("fastapi.routing"))

    assert first == second


def test_app_frames_counted() -> None:
    framework = _fingerprint_through(_caller_in("starlette.routing"))
    app = _fingerprint_through(_caller_in("myapp.routing"))

    assert framework != app
