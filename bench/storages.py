"""Storage backends for the benchmarks, and entries to fill them with.

The SQLite and Redis backends come from flare-sqlite and flare-redis. When
one of them is not importable yet, ``resolve_backend`` falls back to
``MemoryStorage`` and returns a note, so that every figure names what it
measured.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flare_core import Flare, FlareConfig, FlareLogEntry, Storage

# The class each plugin package exports once it is usable.
_READY_CLASSES = {
    "sqlite": ("flare_sqlite", "SQLiteStorage"),
    "redis": ("flare_redis", "RedisStorage"),
}

# Never let the storages trim what a benchmark writes.
NO_TRIM_ENTRIES = 100_000_000


def backend_ready(name: str) -> bool:
    """Return whether the plugin package of backend ``name`` exports its storage."""
    if name not in _READY_CLASSES:
        return name == "memory"
    module_name, class_name = _READY_CLASSES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, class_name)


def resolve_backend(name: str) -> tuple[str, str | None]:
    """Return the backend to use for ``name`` and a note when it had to fall back."""
    if backend_ready(name):
        return name, None
    module_name, class_name = _READY_CLASSES[name]
    return (
        "memory",
        f"{module_name}.{class_name} is not available; measured MemoryStorage",
    )


def storage_plugins(backend: str) -> list[Any]:
    """Return the plugin module that provides ``backend`` (core provides memory)."""
    if backend == "memory":
        return []
    return [importlib.import_module(f"{_READY_CLASSES[backend][0]}.plugin")]


def make_storage(backend: str, **options: Any) -> Storage:
    """Build a storage through its plugin's ``flare_storage`` hook, like ``setup()``."""
    config = FlareConfig(
        storage_backend=backend, max_entries=NO_TRIM_ENTRIES, **options
    )
    return Flare(config, storage_plugins(backend), load_entry_points=False).storage


# Entries -------------------------------------------------------------------

ENDPOINTS = [
    f"/api/v1/{kind}/{{item_id}}"
    for kind in (
        "orders",
        "users",
        "invoices",
        "carts",
        "products",
        "payments",
        "reports",
        "search",
    )
]
_WORDS = (
    "timeout",
    "upstream",
    "database",
    "connection",
    "refused",
    "deadlock",
    "quota",
    "exceeded",
    "invalid",
    "token",
    "payload",
    "schema",
    "mismatch",
    "cache",
    "miss",
    "retry",
    "limit",
    "reached",
    "gateway",
    "serializer",
    "overflow",
    "permission",
    "denied",
    "missing",
    "field",
)


def _stack(depth: int, name: str) -> str:
    frames = "".join(
        f'  File "/srv/app/{name}/module_{i}.py", line {10 + i}, in handler_{i}\n'
        f"    result = step_{i}(request, payload)\n"
        for i in range(depth)
    )
    return f"Traceback (most recent call last):\n{frames}RuntimeError: {name} failed\n"


def _templates(groups: int, seed: int) -> list[FlareLogEntry]:
    """Return one entry per group: an unhandled 500, an HTTP 4xx or a warning."""
    rng = random.Random(seed)
    templates = []
    for index in range(groups):
        route = ENDPOINTS[index % len(ENDPOINTS)]
        words = " ".join(rng.sample(_WORDS, 4))
        kind = index % 4
        if kind in (0, 1):
            fields: dict[str, Any] = {
                "level": "ERROR",
                "event": "unhandled_exception",
                "http_status": 500,
                "exception_type": "RuntimeError",
                "error": f"RuntimeError: {words}",
                "stack_trace": _stack(30, f"svc{index}"),
            }
        elif kind == 2:
            fields = {
                "level": "WARNING",
                "event": "http_exception",
                "http_status": 404,
                "exception_type": "fastapi.exceptions.HTTPException",
                "error": f"HTTPException 404: {words}",
            }
        else:
            fields = {
                "level": "WARNING",
                "event": "validation_error",
                "http_status": 422,
                "error": f"Request validation failed: {words}",
            }
        templates.append(
            FlareLogEntry(
                message=f"{words} (group {index})",
                route=route,
                http_method="GET" if index % 3 else "POST",
                ip_address=f"10.0.{index % 250}.{index % 200 + 1}",
                duration_ms=12.5,
                fingerprint=f"{index:032x}",
                context={
                    "request": {
                        "headers": {
                            "host": "api.example.test",
                            "user-agent": "bench/1.0",
                        },
                        "query_string": "page=2",
                    }
                },
                **fields,
            )
        )
    return templates


def generate_entries(
    count: int,
    *,
    groups: int = 200,
    seed: int = 7,
    span: timedelta = timedelta(days=6),
    now: datetime | None = None,
    grouped: bool = True,
) -> Iterator[FlareLogEntry]:
    """Yield ``count`` entries, oldest first, evenly spread over ``span`` until ``now``.

    Entries are shallow copies of one template per group, so nested values
    (context, stack trace text) are shared between copies. Storages only
    read them, and sharing keeps a million entries in a few hundred MB.
    """
    rng = random.Random(seed)
    templates = _templates(groups, seed)
    end = now or datetime.now(UTC)
    start = end - span
    step = span / max(count, 1)
    for index in range(count):
        template = templates[rng.randrange(groups)]
        item_id = rng.randrange(1, 1_000)
        update: dict[str, Any] = {
            "timestamp": start + step * index,
            "endpoint": template.route.replace("{item_id}", str(item_id))
            if template.route
            else None,
            "request_id": f"{seed:04x}{index:012x}",
        }
        if not grouped:
            update["fingerprint"] = None
        yield template.model_copy(update=update)
