"""The redis entry point, configuration errors and the key scheme."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from flare_core import FlareConfig, FlareConfigError, StorageError
from flare_redis import RedisStorage, plugin
from flare_redis._client import _check_version, redacted
from flare_redis._keys import Keys, hash_tag, redis_key


def test_entry_point_loads_plugin() -> None:
    found = [point for point in entry_points(group="flare") if point.name == "redis"]
    assert len(found) == 1
    assert found[0].load() is plugin


def test_plugin_builds_storage() -> None:
    config = FlareConfig(redis_url="redis://127.0.0.1:1/0")
    storage = plugin.flare_storage(config=config, backend="redis")
    assert isinstance(storage, RedisStorage)


def test_plugin_ignores_other_backends() -> None:
    config = FlareConfig(redis_url="redis://127.0.0.1:1/0")
    assert plugin.flare_storage(config=config, backend="sqlite") is None


def test_plugin_needs_redis_url() -> None:
    with pytest.raises(FlareConfigError, match="FLARE_REDIS_URL") as caught:
        plugin.flare_storage(config=FlareConfig(), backend="redis")
    assert caught.value.option == "redis_url"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("flare:logs", "{flare}:logs"),
        ("flare:queue", "{flare}:queue"),
        ("logs", "{logs}"),
        ("app:{tenant}:logs", "app:{tenant}:logs"),
        ("{}odd:logs", "{{}odd}:logs"),
    ],
)
def test_redis_key_adds_hash_tag(key: str, expected: str) -> None:
    assert redis_key(key, "stream_key") == expected


@pytest.mark.parametrize(
    ("key", "tag"), [("a{b}c", "b"), ("a{}c", None), ("a{b", None)]
)
def test_hash_tag(key: str, tag: str | None) -> None:
    assert hash_tag(key) == tag


def test_empty_key_rejected() -> None:
    with pytest.raises(FlareConfigError, match="stream_key"):
        Keys("", "flare:queue")


def test_default_keys_share_slot() -> None:
    Keys("flare:logs", "flare:queue").check_one_slot()


def test_split_keys_rejected() -> None:
    keys = Keys("{a}:logs", "{b}:queue")
    with pytest.raises(FlareConfigError, match=r"'\{a\}:logs'.*'\{b\}:queue'"):
        keys.check_one_slot()


@pytest.mark.parametrize("version", ["6.0.16", "5.0.7", "garbage"])
def test_old_redis_rejected(version: str) -> None:
    with pytest.raises(StorageError, match=r"Redis >= 6\.2 required"):
        _check_version("redis://127.0.0.1:1/0", version)


@pytest.mark.parametrize("version", ["6.2.0", "7.0.15", "10.1"])
def test_new_redis_accepted(version: str) -> None:
    _check_version("redis://127.0.0.1:1/0", version)


def test_redacted_hides_password() -> None:
    url = "rediss://user:s3cret@cache.internal:6380/0"
    assert redacted(url) == "rediss://user:***@cache.internal:6380/0"
