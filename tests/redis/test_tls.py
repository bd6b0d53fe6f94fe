"""TLS through a ``rediss://`` URL, against redis-server's own TLS port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flare_core import FlareConfig, LogQuery, StorageUnavailable
from flare_redis import RedisStorage
from tests.servers import RedisServer, free_port, missing

from .conftest import make_entry


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl is not installed; it makes the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


@pytest.fixture(scope="module")
def tls_server(certificate: Path) -> Iterator[RedisServer]:
    port = free_port()
    args = [
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(certificate / "cert.pem"),
        "--tls-key-file",
        str(certificate / "key.pem"),
        "--tls-ca-cert-file",
        str(certificate / "cert.pem"),
        "--tls-auth-clients",
        "no",
    ]
    server = RedisServer(port=port, extra_args=args)
    try:
        server.start()
    except RuntimeError:
        missing("this redis-server was built without TLS support")
    yield server
    server.stop()


async def test_rediss_url_connects(tls_server: RedisServer, certificate: Path) -> None:
    authority = certificate / "cert.pem"
    url = f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs={authority}"
    storage = RedisStorage(FlareConfig(redis_url=url))
    await storage.start()
    try:
        await storage.write_batch([make_entry(message="over tls")])
        page = await storage.query(LogQuery(q="over tls"))
    finally:
        await storage.close()
    assert len(page.items) == 1


async def test_plain_url_on_tls_port_fails(tls_server: RedisServer) -> None:
    storage = RedisStorage(
        FlareConfig(redis_url=f"redis://127.0.0.1:{tls_server.port}/0")
    )
    with pytest.raises(StorageUnavailable):
        await storage.start()
    await storage.close()
