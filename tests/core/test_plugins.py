"""Plugins on the request path: enrichment, veto, and faults kept from the app."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from starlette.types import Scope

from flare_core import (
    Flare,
    FlareConfig,
    FlareLogEntry,
    FlareSetupError,
    hookimpl,
    push_log,
    setup,
)

from .helpers import serve, stored


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed")


def _build(plugins: list[Any]) -> tuple[FastAPI, Flare]:
    app = FastAPI()

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(409, detail="conflict on order 3")

    @app.get("/crash")
    async def crash() -> None:
        raise KeyError("order 3")

    @app.get("/broken-str")
    async def broken_str() -> None:
        raise BrokenStr()

    flare = setup(
        app, load_entry_points=False, storage_backend="memory", plugins=plugins
    )
    return app, flare


class Tagger:
    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry, scope: Scope | None) -> None:
        entry.context["tenant"] = "acme"
        entry.event = "tagged_" + entry.event
        if scope is not None:
            entry.context["scheme"] = scope["scheme"]


class Veto:
    @hookimpl
    def flare_should_capture(self, status_code: int | None) -> bool | None:
        return False if status_code == 409 else None


class RaisingEnricher:
    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        raise RuntimeError("enricher is broken")


class RaisingVeto:
    @hookimpl
    def flare_should_capture(self) -> bool | None:
        raise RuntimeError("veto is broken")


class FingerprintOverride:
    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        entry.fingerprint = "custom-group"


async def test_enrich_plugin_changes_entry() -> None:
    app, flare = _build([Tagger()])
    async with serve(app) as client:
        await client.get("/fail")
    (entry,) = await stored(flare)

    assert entry.event == "tagged_http_exception"
    assert entry.context["tenant"] == "acme"
    assert entry.context["scheme"] == "http"


async def test_enrich_plugin_sees_pushed_entry() -> None:
    app, flare = _build([Tagger()])
    async with serve(app):
        await push_log(flare, event="job", message="job failed")
    (entry,) = await stored(flare)

    assert entry.event == "tagged_job"
    assert entry.context == {"tenant": "acme"}


async def test_should_capture_false_vetoes() -> None:
    app, flare = _build([Veto()])
    async with serve(app) as client:
        vetoed = await client.get("/fail")
        kept = await client.get("/crash")
    entries = await stored(flare)

    assert vetoed.status_code == 409
    assert kept.status_code == 500
    assert [entry.http_status for entry in entries] == [500]


async def test_plugin_overrides_fingerprint() -> None:
    app, flare = _build([FingerprintOverride()])
    async with serve(app) as client:
        await client.get("/fail")
        await client.get("/crash")
    entries = await stored(flare)

    assert [entry.fingerprint for entry in entries] == ["custom-group", "custom-group"]


class LongFingerprint:
    """Groups by the request path, repeated far past the fingerprint limit."""

    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        entry.fingerprint = (entry.endpoint or "") * 500


async def test_long_fingerprint_stored_as_digest() -> None:
    app, flare = _build([LongFingerprint()])
    async with serve(app) as client:
        await client.get("/fail")
        await client.get("/fail")
        await client.get("/crash")
    entries = await stored(flare)

    fingerprints = [entry.fingerprint for entry in entries]
    expected = [
        hashlib.sha256((path * 500).encode()).hexdigest()
        for path in ("/fail", "/fail", "/crash")
    ]
    assert fingerprints == expected
    assert fingerprints[0] != fingerprints[2]


async def test_raising_enricher_isolated(caplog: pytest.LogCaptureFixture) -> None:
    app, flare = _build([RaisingEnricher(), Tagger()])
    with caplog.at_level(logging.WARNING, logger="flare_core"):
        async with serve(app) as client:
            responses = [await client.get("/fail") for _ in range(3)]
    entries = await stored(flare)
    faults = [r for r in caplog.records if "enricher is broken" in str(r.exc_info)]

    assert [response.status_code for response in responses] == [409, 409, 409]
    assert [response.json() for response in responses] == [
        {"detail": "conflict on order 3"}
    ] * 3
    assert len(entries) == 3
    assert entries[0].context["tenant"] == "acme"
    assert entries[0].fingerprint is not None
    assert len(faults) == 1
    assert "RaisingEnricher" in faults[0].getMessage()
    assert "flare_enrich_entry" in faults[0].getMessage()


async def test_raising_veto_isolated(caplog: pytest.LogCaptureFixture) -> None:
    app, flare = _build([RaisingVeto(), Veto()])
    with caplog.at_level(logging.WARNING, logger="flare_core"):
        async with serve(app) as client:
            vetoed = [await client.get("/fail") for _ in range(3)]
            kept = await client.get("/crash")
    entries = await stored(flare)
    faults = [r for r in caplog.records if "veto is broken" in str(r.exc_info)]

    assert [response.status_code for response in vetoed] == [409, 409, 409]
    assert kept.status_code == 500
    # The broken plugin is skipped; the working veto still drops the 409s.
    assert [entry.http_status for entry in entries] == [500]
    assert len(faults) == 1
    assert "RaisingVeto" in faults[0].getMessage()


async def test_broken_exception_str_captured() -> None:
    app, flare = _build([])
    async with serve(app) as client:
        response = await client.get("/broken-str")
    (entry,) = await stored(flare)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert entry.exception_type is not None
    assert entry.exception_type.endswith("BrokenStr")
    assert entry.message == "BrokenStr"
    assert entry.stack_trace is not None
    assert "in broken_str" in entry.stack_trace


async def test_broken_exception_str_pushed() -> None:
    app, flare = _build([])
    async with serve(app):
        entry = await push_log(
            flare, event="job", message="job failed", exc=BrokenStr()
        )
    (stored_entry,) = await stored(flare)

    assert entry.error is not None
    assert entry.error.endswith("BrokenStr")
    assert stored_entry.fingerprint is not None


async def test_capture_fault_logged_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, flare = _build([])
    flare.buffer.put = None  # type: ignore[assignment,method-assign]

    with caplog.at_level(logging.WARNING, logger="flare_core"):
        async with serve(app) as client:
            responses = [await client.get("/fail") for _ in range(3)]
    faults = [r for r in caplog.records if r.name == "flare_core.capture"]

    assert [response.status_code for response in responses] == [409, 409, 409]
    assert len(faults) == 1
    assert "request itself was not affected" in faults[0].getMessage()


STAMP = datetime.now(UTC).replace(microsecond=0)


class WrongTypes:
    """Sets fields to values of the wrong type, which entries do not validate."""

    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        entry.http_status = "n/a"  # type: ignore[assignment]
        entry.fingerprint = 123  # type: ignore[assignment]
        entry.timestamp = STAMP.isoformat()  # type: ignore[assignment]


async def test_wrong_field_types_reset(caplog: pytest.LogCaptureFixture) -> None:
    app, flare = _build([WrongTypes()])
    with caplog.at_level(logging.WARNING, logger="flare_core"):
        async with serve(app) as client:
            response = await client.get("/fail")
    (entry,) = await stored(flare)

    assert response.status_code == 409
    assert entry.http_status is None
    assert isinstance(entry.fingerprint, str)
    assert entry.timestamp == STAMP
    assert entry.context["invalid_fields"] == ["fingerprint", "http_status"]
    assert FlareLogEntry.model_validate_json(entry.model_dump_json()) == entry
    assert "fingerprint, http_status" in caplog.text


class ReleaseTagger:
    @hookimpl
    def flare_enrich_entry(self, entry: FlareLogEntry) -> None:
        entry.context["release"] = "1.2.3"


def test_type_repair_only_with_enrichers() -> None:
    _, core_only = _build([])
    _, with_plugin = _build([ReleaseTagger()])

    assert core_only.enrichment.check_types is False
    assert with_plugin.enrichment.check_types is True


@pytest.mark.parametrize("plugin", ["flare_release", 42, object()])
def test_setup_rejects_non_plugins(plugin: object) -> None:
    with pytest.raises(FlareSetupError, match=r"setup\(plugins=\.\.\.\)"):
        setup(FastAPI(), storage_backend="memory", plugins=[plugin])


def test_config_shared_by_two_apps_rejected() -> None:
    config = FlareConfig(storage_backend="memory")
    setup(FastAPI(), config=config)

    with pytest.raises(FlareSetupError, match="one FlareConfig per app"):
        setup(FastAPI(), config=config)
