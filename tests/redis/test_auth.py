"""Password authentication: redis_password and a password in the URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flare_core import FlareConfig, LogQuery, StorageError
from flare_redis import RedisStorage
from tests.servers import RedisServer

from .conftest import make_entry

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def protected_server() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=["--requirepass", PASSWORD]).start()
    yield server
    server.stop()


async def test_password_option_authenticates(protected_server: RedisServer) -> None:
    storage = RedisStorage(
        FlareConfig(redis_url=protected_server.url, redis_password=PASSWORD)
    )
    await storage.start()
    try:
        await storage.write_batch([make_entry(message="secret ok")])
        page = await storage.query(LogQuery(q="secret ok"))
    finally:
        await storage.close()
    assert len(page.items) == 1


async def test_wrong_password_fails_without_leaking(
    protected_server: RedisServer,
) -> None:
    url = f"redis://:wrong-pass@127.0.0.1:{protected_server.port}/0"
    storage = RedisStorage(FlareConfig(redis_url=url))
    with pytest.raises(StorageError) as caught:
        await storage.start()
    await storage.close()
    assert "wrong-pass" not in str(caught.value)
    assert "***" in str(caught.value)
