"""Secret scrubbing and size limits of stored entries."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI, Request

from flare_core import Flare, FlareConfig, FlareLogEntry, hookimpl, push_log, setup
from flare_core.scrub import FILTERED, Scrubber

from .helpers import serve, stored

SECRETS = ["qs-secret-1", "eyJ.fake.jwt", "s3cr3t", "key_live_abc", "hunter2"]


def _build(**options: Any) -> tuple[FastAPI, Flare]:
    app = FastAPI()

    @app.post("/boom")
    async def boom(request: Request) -> None:
        await request.json()
        token = request.query_params.get("token")
        raise ValueError(f"bad token {token}")

    @app.get("/header-echo")
    async def header_echo(request: Request) -> None:
        raise ValueError(f"rejected key {request.headers['x-api-key']}")

    flare = setup(app, load_entry_points=False, storage_backend="memory", **options)
    return app, flare


async def _boom(app: FastAPI) -> None:
    async with serve(app) as client:
        response = await client.post(
            "/boom?token=qs-secret-1&page=2",
            headers={
                "Authorization": "Bearer eyJ.fake.jwt",
                "Cookie": "session=s3cr3t",
                "X-API-Key": "key_live_abc",
            },
            json={"user": "u1", "password": "hunter2", "card": {"cvv": "123"}},
        )
    assert response.status_code == 500


async def test_request_secrets_never_stored() -> None:
    app, flare = _build()
    await _boom(app)
    (entry,) = await stored(flare)
    dumped = entry.model_dump_json()

    for secret in SECRETS:
        assert secret not in dumped, secret
    assert '"cvv":"123"' not in dumped.replace(" ", "")


async def test_request_secret_markers_in_place() -> None:
    app, flare = _build()
    await _boom(app)
    (entry,) = await stored(flare)
    request = entry.context["request"]
    body = json.loads(request["body"])

    assert request["headers"]["authorization"] == FILTERED
    assert request["headers"]["cookie"] == FILTERED
    assert request["headers"]["x-api-key"] == FILTERED
    assert "page=2" in request["query_string"]
    assert f"token={FILTERED}" in request["query_string"]
    assert body == {"user": "u1", "password": FILTERED, "card": {"cvv": FILTERED}}
    assert entry.message == f"bad token {FILTERED}"
    assert entry.stack_trace is not None
    assert f"ValueError: bad token {FILTERED}" in entry.stack_trace


async def test_header_names_and_schemes_kept() -> None:
    app, flare = _build()

    @app.get("/session-expired")
    async def session_expired() -> None:
        raise PermissionError("session expired; send a new Bearer token for theme")

    async with serve(app) as client:
        await client.get(
            "/session-expired",
            headers={
                "Cookie": "session=s3cr3t; theme=dark",
                "Authorization": "Bearer abc1234",
            },
        )
    (entry,) = await stored(flare)

    # Only cookie values and credentials are secret, not cookie names or schemes.
    assert entry.message == "session expired; send a new Bearer token for theme"


async def test_header_value_scrubbed_from_message() -> None:
    app, flare = _build()
    async with serve(app) as client:
        await client.get("/header-echo", headers={"X-API-Key": "key_live_abc"})
    (entry,) = await stored(flare)

    assert entry.message == f"rejected key {FILTERED}"


def _scrub(context: dict[str, object], **options: Any) -> FlareLogEntry:
    config = FlareConfig(storage_backend="memory", **options)
    entry = FlareLogEntry(event="test", message="m", context=context)
    Scrubber(config).scrub_entry(entry)
    return entry


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "Password",
        "TOKEN",
        "Api_Key",
        "api-key",
        "new_password",
        "oldPassword",
        "password_confirmation",
        "user[password]",
    ],
)
def test_key_match_case_insensitive(key: str) -> None:
    entry = _scrub({key: "value-1"})

    assert entry.context[key] == FILTERED


@pytest.mark.parametrize(
    "key", ["max_tokens", "tokenizer", "password_hint_shown", "author"]
)
def test_key_match_exact(key: str) -> None:
    entry = _scrub({key: "value-1"})

    assert entry.context[key] == "value-1"


def test_nested_keys_scrubbed() -> None:
    entry = _scrub({"a": [{"b": {"secret": "deep-value"}}], "keep": "deep-value-not"})

    assert entry.context["a"] == [{"b": {"secret": FILTERED}}]


def test_scrub_fields_configurable() -> None:
    entry = _scrub({"pin": "4321", "password": "hunter2"}, scrub_fields=["pin"])

    assert entry.context == {"pin": FILTERED, "password": "hunter2"}


def test_extra_fields_keep_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_SCRUB_EXTRA_FIELDS", "pin")
    entry = _scrub({"pin": "4321", "password": "hunter2", "page": "2"})

    assert entry.context == {"pin": FILTERED, "password": FILTERED, "page": "2"}


def test_scrub_fields_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_SCRUB_FIELDS", "pin, Passcode")
    entry = _scrub({"pin": "4321", "passcode": "9999", "password": "hunter2"})

    assert entry.context == {
        "pin": FILTERED,
        "passcode": FILTERED,
        "password": "hunter2",
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "login failed: password=xyz for u1",
            f"login failed: password={FILTERED} for u1",
        ),
        ("config {'api_key': 'k-1234'}", f"config {{'api_key': '{FILTERED}'}}"),
        ('{"token": "abcd"} rejected', f'{{"token": "{FILTERED}"}} rejected'),
        (
            "header Authorization: Bearer abc.def.ghi",
            f"header Authorization: {FILTERED}",
        ),
        ("max_tokens=300 exceeded", "max_tokens=300 exceeded"),
        (
            '{"password": "ab\\"SEKRITESC30", "pad": "xx',
            f'{{"password": "{FILTERED}", "pad": "xx',
        ),
        ('{"password": "cut-off-SEKRIT', f'{{"password": "{FILTERED}"'),
        ("user[password]=hunter2&page=2", f"user[password]={FILTERED}&page=2"),
    ],
)
def test_secret_pairs_in_messages(message: str, expected: str) -> None:
    entry = FlareLogEntry(event="test", message=message)
    Scrubber(FlareConfig(storage_backend="memory")).scrub_entry(entry)

    assert entry.message == expected


def test_message_scrubbing_can_be_disabled() -> None:
    entry = FlareLogEntry(event="test", message="password=xyz")
    config = FlareConfig(storage_backend="memory", scrub_messages=False)
    Scrubber(config).scrub_entry(entry)

    assert entry.message == "password=xyz"


async def test_truncated_json_body_still_scrubbed() -> None:
    app, flare = _build(max_body_bytes=60)
    async with serve(app) as client:
        await client.post(
            "/boom", json={"user": "u1", "password": "hunter2", "text": "a" * 500}
        )
    (entry,) = await stored(flare)

    assert "hunter2" not in entry.model_dump_json()
    assert entry.context["request"]["body_truncated"] is True


async def test_pushed_context_scrubbed() -> None:
    app, flare = _build()
    async with serve(app):
        await push_log(
            flare,
            event="billing",
            message="charge failed for client_secret=cs_live_99",
            context={"client_secret": "cs_live_99", "amount": 5},
        )
    (entry,) = await stored(flare)

    assert "cs_live_99" not in entry.model_dump_json()
    assert entry.context["amount"] == 5


async def test_oversized_fields_truncated_not_dropped() -> None:
    app, flare = _build(max_message_chars=100, max_stack_trace_chars=500)

    def recurse(depth: int) -> None:
        if depth == 0:
            raise ValueError("x" * 1000)
        recurse(depth - 1)

    @app.get("/deep")
    async def deep() -> None:
        recurse(40)

    async with serve(app) as client:
        await client.get("/deep")
    (entry,) = await stored(flare)

    assert entry.message.startswith("x" * 100)
    assert "[truncated 900 characters]" in entry.message
    assert len(entry.message) < 150
    assert entry.stack_trace is not None
    assert "truncated" in entry.stack_trace
    assert len(entry.stack_trace) < 600
    assert entry.stack_trace.startswith("Traceback (most recent call last):")
    assert entry.stack_trace.rstrip().endswith("xxxx")


async def test_oversized_context_truncated_not_dropped() -> None:
    app, flare = _build(max_context_chars=1000)
    async with serve(app):
        await push_log(flare, event="big", message="m", context={"blob": "y" * 10_000})
    (entry,) = await stored(flare)

    assert len(json.dumps(entry.context)) <= 1000
    assert entry.context["blob"].startswith("y" * 100)
    assert "truncated" in entry.context["blob"]


def test_pair_scan_handles_long_chains() -> None:
    message = "a:" * 5000 + "password=xyz"
    entry = FlareLogEntry(event="test", message=message)
    Scrubber(FlareConfig(storage_backend="memory")).scrub_entry(entry)

    assert entry.message.endswith(f"password={FILTERED}")


class SelfReferencing:
    """Adds a context value that contains itself, which no scrubber can walk."""

    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        loop: dict[str, object] = {"password": "hunter2"}
        loop["self"] = loop
        entry.context["loop"] = loop


async def test_scrub_failure_withholds_text(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.post("/boom")
    async def boom(request: Request) -> None:
        body = await request.json()
        raise ValueError(f"bad password {body['password']}")

    flare = setup(
        app,
        load_entry_points=False,
        storage_backend="memory",
        plugins=[SelfReferencing()],
    )
    with caplog.at_level(logging.ERROR, logger="flare_core"):
        async with serve(app) as client:
            response = await client.post("/boom", json={"password": "hunter2"})
    (entry,) = await stored(flare)

    assert response.status_code == 500
    assert "hunter2" not in entry.model_dump_json()
    assert entry.context == {"scrub_failed": True}
    assert entry.exception_type == "ValueError"
    assert entry.endpoint == "/boom"
    assert "could not scrub an entry" in caplog.text


def test_repeated_auth_headers_remembered() -> None:
    entry = FlareLogEntry(
        event="test",
        message="tokens tok-aaaa and tok-bbbb sent with Bearer",
        context={
            "request": {
                "headers": {"authorization": "Bearer tok-aaaa, Bearer tok-bbbb"}
            }
        },
    )
    Scrubber(FlareConfig(storage_backend="memory")).scrub_entry(entry)

    assert entry.message == f"tokens {FILTERED} and {FILTERED} sent with Bearer"


def test_repeated_cookie_headers_remembered() -> None:
    entry = FlareLogEntry(
        event="test",
        message="sessions ses-aaaa and ses-bbbb expired",
        context={"request": {"headers": {"cookie": "a=ses-aaaa, b=ses-bbbb"}}},
    )
    Scrubber(FlareConfig(storage_backend="memory")).scrub_entry(entry)

    assert entry.message == f"sessions {FILTERED} and {FILTERED} expired"
