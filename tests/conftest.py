"""Shared fixtures: private redis-server, uvicorn servers and Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import CHROMIUM, RedisServer, UvicornServer, missing

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the suite's own; FLARE_TEST_REDIS_URL is not used here."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of a Redis to test against, emptied before each test.

    FLARE_TEST_REDIS_URL points the suite at a Redis the developer provides
    instead; it must be one whose data may be deleted.
    """
    url = os.environ.get("FLARE_TEST_REDIS_URL") or redis_server.url
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Callable[..., UvicornServer]]:
    """Start uvicorn servers for one test; all are stopped at its end."""
    started: list[UvicornServer] = []

    def start(app: str, **kwargs: object) -> UvicornServer:
        kwargs.setdefault("log_path", tmp_path / f"uvicorn-{len(started)}.log")
        server = UvicornServer(app, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
