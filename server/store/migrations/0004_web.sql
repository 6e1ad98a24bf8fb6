-- The web UI (/ui/): sessions kept here so that they survive a restart and
-- work on every server of one database; settings (the admin password's
-- hash); and where each flash is, for the live progress (the phase and the
-- time of the latest progress post; bytes are in bytes_written/bytes_total).

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    actor      TEXT NOT NULL,
    token_hash TEXT,
    csrf       TEXT NOT NULL,
    source_ip  TEXT,
    created_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

ALTER TABLE cycles ADD COLUMN phase TEXT;
ALTER TABLE cycles ADD COLUMN progress_at TEXT;
CREATE INDEX cycles_ended_flash ON cycles (mac, id) WHERE kind = 'flash' AND state IN ('done', 'failed');
CREATE INDEX events_source ON events (source_ip, kind, ts);
