"""The SQLite schema of flare-sqlite, version 2.

``entries`` holds one row per entry; ``ts`` is microseconds since the Unix
epoch (UTC), so integer order is time order. ``id`` is the row id
(AUTOINCREMENT, so ids are never reused after retention).

Counters that would be slow to compute at a million rows are kept in the
same transaction as the rows they count:

- ``counters``: the total number of stored entries;
- ``minute_counts`` and ``hour_counts``: entries per minute (and hour) and
  level, with the lowest and highest id written in it (stats, timeline, and
  id bounds for time-range queries: rows deleted later only narrow them);
- ``group_hours``: entries per hour and group (sparklines), keyed hour
  first so that one batch's upserts share a few pages;
- ``error_groups``: one row per fingerprint, upserted with each batch.

``entries_fts`` is an external-content FTS5 index over message, error and
endpoint, kept in sync by triggers on insert and delete.

``group_index`` finds a group's entries. It is a contentless FTS5 table
with one token per entry, ``group_token(fingerprint)``, under the entry's
id. The storage inserts the tokens with each batch and deletes them during
retention. A B-tree index on ``(fingerprint, id)`` serves the same reads,
but a batch that touches 80 groups dirties 80 scattered pages of it, and
that doubled the pages each batch commits. FTS5 writes a batch as one new
segment and merges segments later in bulk. The inserts are not made by a
trigger because FTS5 inserts from a trigger measured about three times
slower per row. A token left behind by a row deleted by hand does no harm,
because reads join on ``entries`` and find no row.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

# Columns of ``entries`` in storage order: small, filterable columns first,
# so that filters never read a large stack trace's overflow pages.
ENTRY_COLUMNS: tuple[str, ...] = (
    "id",
    "ts",
    "level",
    "event",
    "http_status",
    "endpoint",
    "fingerprint",
    "route",
    "http_method",
    "request_id",
    "ip_address",
    "duration_ms",
    "exception_type",
    "message",
    "error",
    "context",
    "stack_trace",
)

GROUP_COLUMNS: tuple[str, ...] = (
    "fingerprint",
    "title",
    "level",
    "event",
    "endpoint",
    "count",
    "first_seen",
    "last_seen",
    "status",
    "regression",
    "latest_entry_id",
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    level TEXT NOT NULL,
    event TEXT NOT NULL,
    http_status INTEGER,
    endpoint TEXT,
    fingerprint TEXT,
    route TEXT,
    http_method TEXT,
    request_id TEXT,
    ip_address TEXT,
    duration_ms REAL,
    exception_type TEXT,
    message TEXT NOT NULL,
    error TEXT,
    context TEXT NOT NULL,
    stack_trace TEXT
);

CREATE INDEX IF NOT EXISTS entries_level ON entries (level, id);
CREATE INDEX IF NOT EXISTS entries_event ON entries (event, id);
CREATE INDEX IF NOT EXISTS entries_status ON entries (http_status, id);
CREATE INDEX IF NOT EXISTS entries_endpoint ON entries (endpoint, id);
CREATE INDEX IF NOT EXISTS entries_ts ON entries (ts);
CREATE INDEX IF NOT EXISTS entries_level_ts ON entries (level, ts);

CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('total', 0);

CREATE TABLE IF NOT EXISTS minute_counts (
    minute INTEGER NOT NULL,
    level TEXT NOT NULL,
    n INTEGER NOT NULL,
    min_id INTEGER NOT NULL,
    max_id INTEGER NOT NULL,
    PRIMARY KEY (minute, level)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS hour_counts (
    hour INTEGER NOT NULL,
    level TEXT NOT NULL,
    n INTEGER NOT NULL,
    min_id INTEGER NOT NULL,
    max_id INTEGER NOT NULL,
    PRIMARY KEY (hour, level)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS error_groups (
    fingerprint TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    level TEXT NOT NULL,
    event TEXT NOT NULL,
    endpoint TEXT,
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'unresolved',
    regression INTEGER NOT NULL DEFAULT 0,
    latest_entry_id TEXT
) WITHOUT ROWID;

-- One index per sort; a status filter walks it. Each batch's upserts rewrite
-- every index on count or last_seen, so no index per status and sort.
CREATE INDEX IF NOT EXISTS groups_last_seen ON error_groups (last_seen, fingerprint);
CREATE INDEX IF NOT EXISTS groups_count ON error_groups (count, fingerprint);
CREATE INDEX IF NOT EXISTS groups_first_seen ON error_groups (first_seen, fingerprint);

CREATE TABLE IF NOT EXISTS group_hours (
    fingerprint TEXT NOT NULL,
    hour INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, fingerprint)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5 (
    message, error, endpoint,
    content = 'entries', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER IF NOT EXISTS entries_fts_insert AFTER INSERT ON entries BEGIN
    INSERT INTO entries_fts (rowid, message, error, endpoint)
    VALUES (new.id, new.message, new.error, new.endpoint);
END;

CREATE TRIGGER IF NOT EXISTS entries_fts_delete AFTER DELETE ON entries BEGIN
    INSERT INTO entries_fts (entries_fts, rowid, message, error, endpoint)
    VALUES ('delete', old.id, old.message, old.error, old.endpoint);
END;

CREATE VIRTUAL TABLE IF NOT EXISTS group_index USING fts5 (
    token, content = '', detail = none
);

INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""

# Upgrades from each older version, run in the transaction that creates
# SCHEMA. UPGRADE_BEFORE runs ahead of SCHEMA and UPGRADE_AFTER after it.
# A version 1 process still running on an upgraded file, as in a rolling
# restart, writes no group_index tokens. For an hour after the upgrade,
# retention adds the tokens of entries above the 'group_index_checked' id.
UPGRADE_BEFORE: dict[int, str] = {
    1: """
DROP INDEX IF EXISTS entries_fingerprint;
DROP INDEX IF EXISTS groups_status_last_seen;
DROP INDEX IF EXISTS groups_status_count;
DROP INDEX IF EXISTS groups_status_first_seen;
ALTER TABLE group_hours RENAME TO group_hours_v1;
""",
}
# SQL for the group_index token of the row's fingerprint, as group_token().
GROUP_TOKEN_SQL = "'g' || hex(fingerprint)"

UPGRADE_AFTER: dict[int, str] = {
    1: f"""
INSERT INTO group_hours (fingerprint, hour, n)
    SELECT fingerprint, hour, n FROM group_hours_v1;
DROP TABLE group_hours_v1;
INSERT INTO group_index (rowid, token)
    SELECT id, {GROUP_TOKEN_SQL} FROM entries WHERE fingerprint IS NOT NULL;
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'group_index_checked', CAST(coalesce(max(id), 0) AS TEXT) FROM entries;
INSERT OR REPLACE INTO meta (key, value) VALUES (
    'group_index_check_until',
    CAST((CAST(strftime('%s', 'now') AS INTEGER) + 3600) * 1000000 AS TEXT)
);
""",
}


def group_token(fingerprint: str) -> str:
    """Return the ``group_index`` token of a fingerprint, as ``GROUP_TOKEN_SQL``.

    The hex digits of the UTF-8 text make any fingerprint, whatever its
    characters, one word that the tokenizer keeps whole (in lower case).
    """
    return "g" + fingerprint.encode("utf-8", "surrogatepass").hex()


# Scratch tables of the writer connection, for retention.
TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY);
CREATE TEMP TABLE IF NOT EXISTS doomed_minutes (minute INTEGER, level TEXT, c INTEGER);
CREATE TEMP TABLE IF NOT EXISTS doomed_hour_counts (
    hour INTEGER, level TEXT, c INTEGER
);
CREATE TEMP TABLE IF NOT EXISTS doomed_hours (
    fingerprint TEXT, hour INTEGER, c INTEGER
);
CREATE TEMP TABLE IF NOT EXISTS doomed_groups (
    fingerprint TEXT PRIMARY KEY, c INTEGER
);
"""

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000


def floor_div_sql(column: str, unit: int) -> str:
    """SQL for ``column // unit`` rounding down, also before 1970."""
    return (
        f"(CASE WHEN {column} >= 0 THEN {column} / {unit} "
        f"ELSE ({column} - {unit - 1}) / {unit} END)"
    )
