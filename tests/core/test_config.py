"""Options: arguments, ``FLARE_*`` variables, and the errors for wrong ones."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from flare_core import (
    Flare,
    FlareConfig,
    FlareConfigError,
    FlareSetupError,
    MemoryStorage,
    hookimpl,
    setup,
)


def require_admin() -> None:
    """A stand-in dashboard dependency, imported by its path in a test."""


# A non-default value for every option: the text of its FLARE_* variable and
# the value FlareConfig must parse from it.
ENV_SAMPLES: dict[str, tuple[str, Any]] = {
    "storage_backend": ("Memory", "memory"),
    "redis_url": ("redis://127.0.0.1:1/3", "redis://127.0.0.1:1/3"),
    "redis_password": ("pw-1", "pw-1"),
    "stream_key": ("app:logs", "app:logs"),
    "queue_key": ("app:queue", "app:queue"),
    "redis_max_connections": ("7", 7),
    "sqlite_path": ("/tmp/other.db", "/tmp/other.db"),
    "max_entries": ("50", 50),
    "retention_hours": ("1.5", 1.5),
    "storage_strict_startup": ("true", True),
    "dashboard_path": ("/errors/", "/errors"),
    "dashboard_title": ("Errors", "Errors"),
    "dashboard_auth_dependency": (f"{__name__}:require_admin", require_admin),
    "dashboard_public": ("1", True),
    "worker_interval_seconds": ("0.25", 0.25),
    "worker_batch_size": ("9", 9),
    "buffer_size": ("99", 99),
    "flush_timeout_seconds": ("0", 0.0),
    "capture_status_codes": ("404, 500-502", frozenset({404, 500, 501, 502})),
    "trusted_proxies": ("10.0.0.0/8,127.0.0.1", ["10.0.0.0/8", "127.0.0.1"]),
    "request_id_header": ("X-Trace", "X-Trace"),
    "capture_request_body": ("false", False),
    "max_body_bytes": ("10", 10),
    "max_message_chars": ("100", 100),
    "max_stack_trace_chars": ("1000", 1000),
    "max_stack_frames": ("5", 5),
    "max_context_chars": ("999", 999),
    "scrub_headers": ("X-One, x-two", ["X-One", "x-two"]),
    "scrub_fields": ("pin", ["pin"]),
    "scrub_extra_fields": ("pin,otp", ["pin", "otp"]),
    "scrub_extra_headers": ("x-pin", ["x-pin"]),
    "scrub_messages": ("no", False),
    "zitadel_domain": ("auth.example.com", "auth.example.com"),
    "zitadel_client_id": ("cid", "cid"),
    "zitadel_project_id": ("pid", "pid"),
    "zitadel_old_client_id": ("old-cid", "old-cid"),
    "zitadel_old_project_id": ("old-pid", "old-pid"),
    "zitadel_issuer": ("https://auth.example.com", "https://auth.example.com"),
    "zitadel_leeway_seconds": ("5", 5.0),
    "zitadel_jwks_ttl_seconds": ("60", 60.0),
    "zitadel_jwks_refresh_cooldown_seconds": ("5", 5.0),
    "zitadel_session_max_age_seconds": ("600", 600),
    "zitadel_session_secret": ("s" * 32, "s" * 32),
    "zitadel_client_secret": ("cs-1", "cs-1"),
}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_env_samples_cover_every_option() -> None:
    missing = sorted(set(FlareConfig.model_fields) - set(ENV_SAMPLES))

    assert missing == [], f"add a FLARE_* sample for {missing} to ENV_SAMPLES"


@pytest.mark.parametrize("option", sorted(ENV_SAMPLES))
def test_every_option_read_from_env(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = ENV_SAMPLES[option]
    monkeypatch.setenv(f"FLARE_{option.upper()}", text)

    assert _plain(getattr(FlareConfig(), option)) == expected


def test_argument_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_BUFFER_SIZE", "99")
    monkeypatch.setenv("FLARE_SCRUB_FIELDS", "pin")

    config = FlareConfig(buffer_size=5, scrub_fields=["otp"])

    assert config.buffer_size == 5
    assert config.scrub_fields == ["otp"]


@pytest.mark.parametrize(
    ("options", "option", "expected"),
    [
        ({"worker_batch_size": "abc"}, "worker_batch_size", "valid integer"),
        ({"worker_interval_seconds": -1}, "worker_interval_seconds", "greater than 0"),
        (
            {"capture_status_codes": "abc"},
            "capture_status_codes",
            "range such as '500-599'",
        ),
        ({"capture_status_codes": [700]}, "capture_status_codes", "100-599"),
        ({"trusted_proxies": ["proxy.local"]}, "trusted_proxies", "network"),
        ({"dashboard_path": "flare"}, "dashboard_path", "must start with one '/'"),
        ({"dashboard_path": "//evil.example"}, "dashboard_path", "one '/'"),
        ({"request_id_header": "bad header"}, "request_id_header", "header name"),
        ({"redis_url": "http://127.0.0.1:1"}, "redis_url", "redis://"),
        ({"redis_url": "redis://127.0.0.1:99999"}, "redis_url", "port"),
        ({"zitadel_domain": "https://auth.example.com/"}, "zitadel_domain", "host"),
        ({"zitadel_issuer": "notaurl"}, "zitadel_issuer", "http(s) URL"),
        ({"capture_status_codes": "500-400"}, "capture_status_codes", "upwards"),
        ({"capture_status_codes": "400-99999999"}, "capture_status_codes", "100-599"),
        ({"capture_status_codes": " "}, "capture_status_codes", "no status code"),
        ({"worker_interval_seconds": "inf"}, "worker_interval_seconds", "finite"),
        ({"sqlite_path": ""}, "sqlite_path", "at least 1"),
        ({"capture_request_body": "maybe"}, "capture_request_body", "valid boolean"),
    ],
)
def test_wrong_value_names_option(
    options: dict[str, Any], option: str, expected: str
) -> None:
    with pytest.raises(FlareConfigError) as caught:
        FlareConfig(**options)

    assert caught.value.option == option
    assert option in str(caught.value)
    assert expected in str(caught.value)
    assert f"FLARE_{option.upper()}" in str(caught.value)


def test_wrong_env_value_names_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_WORKER_INTERVAL_SECONDS", "-2")

    with pytest.raises(FlareConfigError, match="worker_interval_seconds") as caught:
        FlareConfig()

    assert caught.value.option == "worker_interval_seconds"


def test_secret_value_not_echoed() -> None:
    with pytest.raises(FlareConfigError) as caught:
        FlareConfig(redis_password=["hunter2-secret"])

    assert "hunter2-secret" not in str(caught.value)


def test_misspelled_argument_suggests_option() -> None:
    with pytest.raises(FlareConfigError) as caught:
        FlareConfig(worker_intervall_seconds=1)

    message = str(caught.value)
    assert caught.value.option == "worker_intervall_seconds"
    assert "Did you mean 'worker_interval_seconds'?" in message
    assert "Valid options: " in message
    assert "buffer_size" in message


def test_misspelled_env_variable_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_BUFER_SIZE", "10")

    with pytest.raises(FlareConfigError) as caught:
        FlareConfig()

    assert caught.value.option == "bufer_size"
    assert "FLARE_BUFER_SIZE" in str(caught.value)
    assert "Did you mean 'buffer_size'?" in str(caught.value)


def test_setup_rejects_misspelled_option() -> None:
    with pytest.raises(FlareConfigError, match="storage_backnd"):
        setup(FastAPI(), load_entry_points=False, storage_backnd="memory")


def test_dependency_import_error_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARE_DASHBOARD_AUTH_DEPENDENCY", "no_such_module_x:guard")

    with pytest.raises(
        FlareConfigError, match="cannot import 'no_such_module_x:guard'"
    ):
        FlareConfig()


class RedisStandIn:
    """Provide memory storage for the "redis" backend, so nothing connects."""

    @hookimpl
    def flare_storage(self, backend: str) -> MemoryStorage | None:
        return MemoryStorage() if backend == "redis" else None


def test_setup_redis_url_shorthand() -> None:
    url = "redis://127.0.0.1:1/0"
    flare = setup(
        FastAPI(), load_entry_points=False, redis_url=url, plugins=[RedisStandIn()]
    )

    assert flare.config.redis_url == url
    assert flare.backend == "redis"


def test_setup_config_and_options_rejected() -> None:
    with pytest.raises(FlareSetupError, match="both config= and options"):
        setup(FastAPI(), FlareConfig(storage_backend="memory"), buffer_size=3)


def test_unknown_backend_setup_error() -> None:
    with pytest.raises(FlareSetupError, match="'nosuch'") as caught:
        setup(FastAPI(), storage_backend="nosuch")

    assert "install the plugin that provides it" in str(caught.value)


@pytest.mark.parametrize(
    ("backend", "package"), [("sqlite", "flare-sqlite"), ("redis", "flare-redis")]
)
def test_missing_backend_names_package(backend: str, package: str) -> None:
    config = FlareConfig(storage_backend=backend)

    with pytest.raises(FlareSetupError, match=f"pip install {package}"):
        Flare(config, load_entry_points=False)


def test_redis_url_without_plugins_names_package() -> None:
    config = FlareConfig(redis_url="redis://127.0.0.1:1/0")

    with pytest.raises(FlareSetupError, match="pip install flare-redis"):
        Flare(config, load_entry_points=False)


def test_lowercase_unknown_env_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("flare_sqlit_path", "x.db")
    with pytest.raises(FlareConfigError) as caught:
        FlareConfig()

    assert caught.value.option == "sqlit_path"
    assert "sqlite_path" in str(caught.value)
