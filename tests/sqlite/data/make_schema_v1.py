"""Write ``schema_v1.db``: a database as flare-sqlite 0.2.0 (schema version 1) left it.

Run from a checkout of 0.2.0 with its packages importable:

    python tests/sqlite/data/make_schema_v1.py tests/sqlite/data/schema_v1.db

The upgrade test opens a copy with the current storage and checks that
nothing stored is lost. The values here and in that test must agree.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from flare_core.models import FlareLogEntry
from flare_sqlite import SQLiteStorage

NOW = datetime(2026, 3, 14, 15, 30, 0, tzinfo=UTC)

# fingerprint: minutes before NOW of each of its entries
GROUPS: dict[str | None, list[int]] = {
    "fp-a": [5, 65, 70, 130, 200],
    "custom key: orders/#1 ünï": [10, 100, 190],
    "fp-resolved": [15, 25],
    None: [1, 2],
}


async def main(path: str) -> None:
    storage = SQLiteStorage(path)
    await storage.start()
    entries = [
        FlareLogEntry(
            timestamp=NOW - timedelta(minutes=minutes),
            level="ERROR",
            event="unhandled_exception",
            message=f"failure {minutes}",
            endpoint="/items",
            route="/items",
            http_status=500,
            fingerprint=fingerprint,
            exception_type="builtins.RuntimeError",
            error="RuntimeError: boom",
        )
        for fingerprint, ages in GROUPS.items()
        for minutes in sorted(ages, reverse=True)
    ]
    await storage.write_batch(entries)
    await storage.set_group_status("fp-resolved", "resolved")
    await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
