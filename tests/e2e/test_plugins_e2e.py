"""Entry-point plugins: a throwaway distribution installed with pip into a
temporary directory and loaded by a real uvicorn app."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers import UvicornServer

from .capture_helpers import wait_for_entries

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.apps.capture_app:app"

PLUGIN_SOURCE = """\
from flare_core import hookimpl


@hookimpl
def flare_enrich_entry(entry):
    entry.context["toy_plugin"] = "loaded"
"""

BROKEN_SOURCE = 'raise ImportError("toy-lib is not installed")\n'

# What ``[project.entry-points.flare]`` in a pyproject.toml becomes in a wheel.
ENTRY_POINTS = "[flare]\ntoy = flare_toy_plugin\ntoybroken = flare_toy_broken\n"


def _record_line(name: str, data: bytes) -> str:
    digest = (
        base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    )
    return f"{name},sha256={digest},{len(data)}"


def _build_wheel(directory: Path) -> Path:
    """Write a pure-Python wheel with two ``flare`` entry points, one broken.

    The wheel is written directly because building from a pyproject.toml
    needs build tools that a test must not download.
    """
    info = "flare_toy_plugin-0.1.dist-info"
    files = {
        "flare_toy_plugin.py": PLUGIN_SOURCE.encode(),
        "flare_toy_broken.py": BROKEN_SOURCE.encode(),
        f"{info}/METADATA": (
            b"Metadata-Version: 2.1\nName: flare-toy-plugin\nVersion: 0.1\n"
        ),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: flare-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": ENTRY_POINTS.encode(),
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()

    wheel = directory / "flare_toy_plugin-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the toy distribution with pip into a directory of its own."""
    directory = tmp_path_factory.mktemp("toy-plugin")
    target = directory / "site"
    wheel = _build_wheel(directory)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    return target


def test_entry_point_plugin_loaded(
    plugin_site: Path, uvicorn_server: Callable[..., UvicornServer]
) -> None:
    server = uvicorn_server(
        APP,
        cwd=ROOT,
        env={"PYTHONPATH": f"{plugin_site}:{ROOT}", "FLARE_TEST_ENTRY_POINTS": "1"},
    )
    response = httpx.get(f"{server.url}/fail/1", timeout=10)
    entries = wait_for_entries(server, 1)
    plugins = httpx.get(f"{server.url}/_test/health", timeout=10).json()["plugins"]
    by_name = {plugin["name"]: plugin for plugin in plugins}

    assert response.status_code == 500
    assert len(entries) == 1
    assert entries[0]["context"]["toy_plugin"] == "loaded"
    assert by_name["toy"]["error"] is None
    assert by_name["toy"]["source"] == "flare-toy-plugin"


def test_broken_entry_point_logged(
    plugin_site: Path, uvicorn_server: Callable[..., UvicornServer]
) -> None:
    server = uvicorn_server(
        APP,
        cwd=ROOT,
        env={"PYTHONPATH": f"{plugin_site}:{ROOT}", "FLARE_TEST_ENTRY_POINTS": "1"},
    )
    ok = httpx.get(f"{server.url}/_test/health", timeout=10)
    plugins = {plugin["name"]: plugin for plugin in ok.json()["plugins"]}
    logs = server.logs()

    assert ok.status_code == 200
    assert plugins["toybroken"]["error"] == "ImportError: toy-lib is not installed"
    assert "Flare plugin 'toybroken'" in logs
    assert "failed to load" in logs
    assert "ImportError: toy-lib is not installed" in logs
