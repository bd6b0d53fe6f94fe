"""RedisStorage on a three-node Redis Cluster started on loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from flare_core import FlareConfig, FlareConfigError, GroupQuery, LogQuery
from flare_redis import RedisStorage
from tests.servers import RedisServer, free_port, missing

from .conftest import NOW, make_entry

pytestmark = pytest.mark.cluster

CLUSTER_ARGS = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
]


def _port_pair_free(port: int) -> bool:
    """Check ``port + 10000``, the cluster bus port Redis uses, is free too."""
    if port + 10000 > 65535:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


def _wait_cluster_ok(ports: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            while client.cluster("info").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"cluster node {port} is not ok after {timeout} s"
                    )
                time.sleep(0.1)
        finally:
            client.close()


@pytest.fixture(scope="module")
def cluster_ports() -> Iterator[list[int]]:
    cli = shutil.which("redis-cli")
    if cli is None:
        missing("redis-cli is not installed (apt-get install redis-tools)")
    servers = [
        RedisServer(port=port, extra_args=CLUSTER_ARGS) for port in _cluster_ports(3)
    ]
    try:
        for server in servers:
            server.start()
        nodes = [f"127.0.0.1:{server.port}" for server in servers]
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        ports = [server.port for server in servers]
        _wait_cluster_ok(ports)
        yield ports
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def cluster_url(cluster_ports: list[int]) -> AsyncIterator[str]:
    for port in cluster_ports:
        client = aioredis.Redis(host="127.0.0.1", port=port)
        await client.flushall()
        await client.aclose()
    yield f"redis://127.0.0.1:{cluster_ports[0]}/0"


@pytest.fixture
async def cluster_storage(cluster_url: str) -> AsyncIterator[RedisStorage]:
    storage = RedisStorage(FlareConfig(redis_url=cluster_url))
    await storage.start()
    yield storage
    await storage.close()


async def _all_keys(ports: list[int]) -> dict[int, list[bytes]]:
    found = {}
    for port in ports:
        client = aioredis.Redis(host="127.0.0.1", port=port)
        found[port] = await client.keys("*")
        await client.aclose()
    return found


async def test_cluster_detected(cluster_storage: RedisStorage) -> None:
    assert cluster_storage.cluster is True


async def test_cluster_write_and_query(cluster_storage: RedisStorage) -> None:
    entries = [
        make_entry(i, message=f"m{i}", fingerprint=f"g{i % 3}") for i in range(30)
    ]
    await cluster_storage.write_batch(entries)
    page = await cluster_storage.query(LogQuery(limit=10, fingerprint="g1"))
    second = await cluster_storage.query(LogQuery(limit=20, q="m2"))
    stored = await cluster_storage.get(entries[0].id or "")
    assert [entry.message for entry in page.items] == [f"m{i}" for i in range(1, 30, 3)]
    assert {entry.message for entry in second.items} == {
        "m2",
        *(f"m{i}" for i in range(20, 30)),
    }
    assert stored == entries[0]


async def test_cluster_groups_and_status(cluster_storage: RedisStorage) -> None:
    await cluster_storage.write_batch(
        [make_entry(i, fingerprint=f"g{i % 3}") for i in range(9)]
    )
    await cluster_storage.set_group_status("g0", "resolved")
    await cluster_storage.write_batch([make_entry(0, fingerprint="g0")])
    groups = await cluster_storage.query_groups(GroupQuery(sort="count"))
    regressed = await cluster_storage.get_group("g0")
    lines = await cluster_storage.group_sparklines(["g1"], hours=2, now=NOW)
    assert groups.items[0].fingerprint == "g0"
    assert regressed is not None
    assert regressed.regression is True
    assert lines == {"g1": [0, 3]}


async def test_cluster_retention(cluster_storage: RedisStorage) -> None:
    await cluster_storage.write_batch([make_entry(i * 600) for i in range(12)])
    removed = await cluster_storage.apply_retention(5, timedelta(hours=1), now=NOW)
    stats = await cluster_storage.stats(now=NOW)
    assert removed == 7
    assert stats.total == 5


async def test_cluster_keys_share_one_slot(
    cluster_storage: RedisStorage, cluster_ports: list[int]
) -> None:
    await cluster_storage.write_batch(
        [
            make_entry(i, http_status=500, endpoint="/e", fingerprint="g")
            for i in range(5)
        ]
    )
    by_node = await _all_keys(cluster_ports)
    keys = [key for node_keys in by_node.values() for key in node_keys]
    slots = {key_slot(key) for key in keys}
    nodes_with_keys = [port for port, node_keys in by_node.items() if node_keys]
    assert len(keys) > 10
    assert slots == {key_slot(b"{flare}")}
    assert len(nodes_with_keys) == 1


async def test_cluster_rejects_split_keys(cluster_url: str) -> None:
    config = FlareConfig(
        redis_url=cluster_url, stream_key="{a}:logs", queue_key="{b}:queue"
    )
    storage = RedisStorage(config)
    with pytest.raises(FlareConfigError, match="different Redis Cluster slots"):
        await storage.start()
    await storage.close()
