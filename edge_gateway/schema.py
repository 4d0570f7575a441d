"""The gateway database's tables, and the statement that guards inbox outcomes."""

from __future__ import annotations

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS inbox (
        command_id TEXT PRIMARY KEY,
        meter_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        action TEXT,
        status TEXT NOT NULL
            CHECK (status IN ('accepted', 'executed', 'rejected', 'expired', 'failed')),
        relay TEXT,
        event_code INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        expires_at_ms INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        done_at_ms INTEGER,
        event_seq INTEGER,
        read_ms INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS inbox_unfinished ON inbox (received_at_ms)"
    " WHERE status = 'accepted'",
    "CREATE INDEX IF NOT EXISTS inbox_done ON inbox (done_at_ms) WHERE status != 'accepted'",
    """CREATE TABLE IF NOT EXISTS meter_versions (
        meter_id TEXT PRIMARY KEY, last_version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS meter_events (
        meter_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS roster (
        meter_id TEXT PRIMARY KEY, control_mode INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS outbound (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_ms INTEGER NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Telemetry batches waiting for the broker's PUBACK, apart from acks and events: only these
    # are ever dropped (oldest first) to bound the backlog, and they replay at their own pace.
    """CREATE TABLE IF NOT EXISTS telemetry (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_ms INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        payload BLOB NOT NULL)""",
    # Per meter, the start of the next load-profile block not yet collected.
    """CREATE TABLE IF NOT EXISTS profile_cursors (
        meter_id TEXT PRIMARY KEY, next_block_ms INTEGER NOT NULL)""",
)

INBOX_COLUMNS = (
    "command_id, meter_id, version, action, status, relay, event_code, reason,"
    " expires_at_ms, received_at_ms, done_at_ms, event_seq, read_ms"
)

# Columns later versions added to a table that older gateways' databases already have.
ADDED_COLUMNS = (
    ("inbox", "event_seq", "INTEGER"),
    ("inbox", "read_ms", "INTEGER"),
)


# An outcome never overwrites another: only accepted -> finished and failed -> accepted (a retry)
# are transitions, so a copy of a known command id refused on another meter's lane (which may
# race the original) cannot replace what the original's entry says.
UPSERT_ENTRY = f"""INSERT INTO inbox ({INBOX_COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (command_id) DO UPDATE SET
        status = excluded.status, relay = excluded.relay, event_code = excluded.event_code,
        reason = excluded.reason, done_at_ms = excluded.done_at_ms,
        event_seq = excluded.event_seq, read_ms = excluded.read_ms
    WHERE (inbox.status = 'accepted' AND excluded.status IN ('executed', 'failed', 'expired'))
       OR (inbox.status = 'failed' AND excluded.status = 'accepted')"""  # noqa: S608
