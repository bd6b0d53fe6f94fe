"""Flare's options, each settable as an argument or a ``FLARE_*`` variable.

Explicit arguments win over the environment. A wrong value or an unknown
name raises ``FlareConfigError`` naming the option and what it accepts.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from .errors import FlareConfigError

__all__ = ["DEFAULT_SCRUB_FIELDS", "DEFAULT_SCRUB_HEADERS", "FlareConfig"]

ENV_PREFIX = "FLARE_"

DEFAULT_SCRUB_HEADERS: tuple[str, ...] = (
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-amz-security-token",
    "x-csrf-token",
)

DEFAULT_SCRUB_FIELDS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "id_token",
    "api_key",
    "apikey",
    "x-api-key",
    "access_token",
    "refresh_token",
    "auth",
    "authorization",
    "private_key",
    "session",
    "sessionid",
    "session_id",
    "new_password",
    "old_password",
    "current_password",
    "password_confirmation",
    "newpassword",
    "oldpassword",
    "jwt",
    "signature",
    "credentials",
    "access_key",
    "secret_key",
    "client_assertion",
    "csrftoken",
    "csrf_token",
    "xsrf_token",
    "credit_card",
    "card_number",
    "cvv",
    "cvc",
    "ssn",
)


# An HTTP header name is a "token" (RFC 9110, section 5.6.2).
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _parse_status_codes(value: Any) -> frozenset[int]:
    """Accept ``"400-599"``, ``"404,500-504"``, ints, ranges or an iterable of them."""
    if isinstance(value, int):
        items: Iterable[Any] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, range):
        items = [value]
    else:
        items = value
    codes: set[int] = set()
    for item in items:
        if isinstance(item, range):
            codes.update(item)
        else:
            try:
                if isinstance(item, str) and "-" in item:
                    low, _, high = item.partition("-")
                    first, last = int(low), int(high)
                    if not 100 <= first <= last <= 599:
                        raise ValueError(
                            f"range {item!r} must run upwards within 100-599"
                        )
                    codes.update(range(first, last + 1))
                else:
                    codes.add(int(item))
            except (TypeError, ValueError) as exc:
                if "upwards" in str(exc):
                    raise
                raise ValueError(
                    f"{item!r} is not a status code or a range such as '500-599'"
                ) from None
    bad = sorted(code for code in codes if not 100 <= code <= 599)
    if bad:
        raise ValueError(f"HTTP status codes must lie in 100-599, not {bad[:5]}")
    if not codes:
        raise ValueError("no status code given; the default is '400-599'")
    return frozenset(codes)


class FlareConfig(BaseSettings):
    """Every option of Flare; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
        arbitrary_types_allowed=True,
    )

    # Storage
    storage_backend: str | None = Field(
        default=None,
        description=(
            "Backend name: sqlite, redis, memory or a plugin's. Unset picks one."
        ),
    )
    redis_url: str | None = None
    redis_password: SecretStr | None = None
    stream_key: str = "flare:logs"
    queue_key: str = "flare:queue"
    redis_max_connections: int = Field(default=20, ge=1)
    sqlite_path: str = Field(default="flare.db", min_length=1)
    max_entries: int = Field(default=10_000, ge=1)
    retention_hours: float = Field(default=168, gt=0)
    storage_strict_startup: bool = False

    # Dashboard
    dashboard_path: str = "/flare"
    dashboard_title: str = "Flare"
    dashboard_auth_dependency: Callable[..., Any] | None = Field(
        default=None, exclude=True
    )
    dashboard_public: bool = False

    # Pipeline
    worker_interval_seconds: float = Field(default=5, gt=0)
    worker_batch_size: int = Field(default=100, ge=1)
    buffer_size: int = Field(default=10_000, ge=1)
    flush_timeout_seconds: float = Field(default=10, ge=0)

    # Capture
    capture_status_codes: Annotated[frozenset[int], NoDecode] = frozenset(
        range(400, 600)
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    request_id_header: str | None = "X-Request-ID"
    capture_request_body: bool = True
    max_body_bytes: int = Field(default=8192, ge=0)
    max_message_chars: int = Field(default=4096, ge=64)
    max_stack_trace_chars: int = Field(default=65_536, ge=256)
    max_stack_frames: int = Field(default=60, ge=1)
    max_context_chars: int = Field(default=16_384, ge=256)
    scrub_headers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SCRUB_HEADERS)
    )
    scrub_fields: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SCRUB_FIELDS)
    )
    scrub_extra_headers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    scrub_extra_fields: Annotated[list[str], NoDecode] = Field(default_factory=list)
    scrub_messages: bool = True

    # Zitadel (used by flare-zitadel)
    zitadel_domain: str | None = None
    zitadel_client_id: str | None = None
    zitadel_project_id: str | None = None
    zitadel_old_client_id: str | None = None
    zitadel_old_project_id: str | None = None
    zitadel_issuer: str | None = None
    zitadel_leeway_seconds: float = Field(default=30, ge=0)
    zitadel_jwks_ttl_seconds: float = Field(default=300, gt=0)
    zitadel_jwks_refresh_cooldown_seconds: float = Field(default=30, ge=0)
    zitadel_session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    zitadel_session_secret: SecretStr | None = None
    zitadel_client_secret: SecretStr | None = None

    _runtime: Any = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(type(self).model_fields))
        if unknown:
            raise FlareConfigError(
                _unknown_message(unknown[0], "argument"), option=unknown[0]
            )
        _reject_unknown_env()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None
        except SettingsError as exc:
            raise FlareConfigError(
                f"Invalid Flare environment variable: {exc}"
            ) from None

    @field_validator("capture_status_codes", mode="before")
    @classmethod
    def _status_codes(cls, value: Any) -> frozenset[int]:
        return _parse_status_codes(value)

    @field_validator(
        "trusted_proxies",
        "scrub_headers",
        "scrub_fields",
        "scrub_extra_headers",
        "scrub_extra_fields",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("dashboard_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if (
            not value.startswith("/")
            or value.startswith("//")
            or value.rstrip("/") == ""
            or any(char in value for char in " \\?#")
        ):
            raise ValueError(
                "must start with one '/' and name a path, such as '/flare'"
            )
        return value.rstrip("/")

    @field_validator("request_id_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not _HEADER_TOKEN.fullmatch(value):
            raise ValueError(
                "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), "
                "such as 'X-Request-ID'; leave it empty to turn the header off"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "must start with redis://, rediss:// (TLS) or unix://, such as "
                "'redis://localhost:6379/0'"
            )
        try:
            parts.port  # noqa: B018 - urlsplit checks the port when it is read
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("names no host, such as 'redis://localhost:6379/0'")
        return value.strip()

    @field_validator("zitadel_domain")
    @classmethod
    def _zitadel_domain(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or " " in value or not value.strip()):
            raise ValueError(
                "must be a bare host name such as 'auth.example.com'; "
                "give a full URL as zitadel_issuer instead"
            )
        return value

    @field_validator("zitadel_issuer")
    @classmethod
    def _zitadel_issuer(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    "must be an http(s) URL such as 'https://auth.example.com'"
                )
        return value

    @field_validator("dashboard_auth_dependency", mode="before")
    @classmethod
    def _dependency(cls, value: Any) -> Any:
        # From the environment the dependency comes as "package.module:function".
        if isinstance(value, str):
            return _import_object(value)
        return value

    @field_validator("storage_backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        return value.strip().lower() or None if value is not None else None

    @property
    def scrub_header_set(self) -> frozenset[str]:
        names = [*self.scrub_headers, *self.scrub_extra_headers]
        return frozenset(name.lower() for name in names)

    @property
    def scrub_field_set(self) -> frozenset[str]:
        """The denylisted keys, normalized by ``normalize_key``."""
        names = [*self.scrub_fields, *self.scrub_extra_fields]
        return frozenset(normalize_key(name) for name in names)


@functools.lru_cache(maxsize=4096)
def normalize_key(key: str) -> str:
    """Normalize a key for the denylist: lower case, ``-`` as ``_``, and for a
    form key such as ``user[password]`` its last bracketed part."""
    key = key.strip().lower()
    if key.endswith("]") and "[" in key:
        key = key[key.rindex("[") + 1 : -1]
    return key.replace("-", "_")


def _import_object(path: str) -> Any:
    module_name, _, attribute = path.strip().partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"must be an import path such as 'myapp.auth:require_admin', got {path!r}"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            target = getattr(target, name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    return target


def _option_names() -> list[str]:
    return sorted(FlareConfig.model_fields)


def _unknown_message(name: str, where: str) -> str:
    guess = difflib.get_close_matches(name.lower(), _option_names(), n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    return (
        f"Unknown Flare option {name!r} ({where}).{hint} "
        f"Valid options: {', '.join(_option_names())}."
    )


def _reject_unknown_env() -> None:
    known = {ENV_PREFIX + name.upper() for name in FlareConfig.model_fields}
    # FLARE_TEST_* variables belong to the test suite, not to the library.
    for name in os.environ:
        # pydantic-settings reads these names case-insensitively, so check so.
        key = name.upper()
        if (
            key.startswith(ENV_PREFIX)
            and key not in known
            and not key.startswith("FLARE_TEST_")
        ):
            option = key[len(ENV_PREFIX) :].lower()
            raise FlareConfigError(
                _unknown_message(option, f"environment variable {key}"), option=option
            )


def _config_error(exc: ValidationError) -> FlareConfigError:
    lines = []
    first: str | None = None
    for error in exc.errors():
        option = ".".join(str(part) for part in error["loc"]) or "?"
        first = first or option
        value = error.get("input")
        shown = "" if _may_hold_secret(option) else f" (got {value!r})"
        hint = _hint(option)
        reason = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{option}: {reason}{shown}.{hint}")
    return FlareConfigError("Invalid Flare option " + "; ".join(lines), option=first)


def _may_hold_secret(option: str) -> bool:
    """Tell whether an error message must not repeat the option's value."""
    return (
        option.startswith("zitadel_")
        or "secret" in option
        or "password" in option
        or option == "redis_url"
    )


def _hint(option: str) -> str:
    field = FlareConfig.model_fields.get(option.split(".")[0])
    if field is None:
        return ""
    env = ENV_PREFIX + option.split(".")[0].upper()
    default = _show_default(field.get_default(call_default_factory=True))
    return f" Set it as an argument or as {env}; the default is {default}."


def _show_default(value: Any) -> str:
    """Format a default for an error message, with status codes as ranges."""
    if (
        isinstance(value, frozenset)
        and value
        and all(isinstance(v, int) for v in value)
    ):
        codes = sorted(value)
        ranges: list[str] = []
        start = previous = codes[0]
        for code in [*codes[1:], None]:
            if code is not None and code == previous + 1:
                previous = code
                continue
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            if code is not None:
                start = previous = code
        return repr(",".join(ranges))
    return repr(value)
