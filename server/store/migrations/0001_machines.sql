-- The fleet's machines, their labels, the event log and the API tokens.
-- Portable SQL (SQLite and PostgreSQL): TEXT timestamps in UTC RFC 3339 with
-- microseconds (they sort as text), INTEGER 0/1 for flags, and SERIAL_ID,
-- which the store replaces with the database's auto-increment primary key.

CREATE TABLE machines (
    mac                TEXT PRIMARY KEY,
    image_ref          TEXT,
    boot_mode          TEXT NOT NULL,
    sanboot_drive      TEXT,
    target_disk_serial TEXT,
    discovered_at      TEXT,
    last_seen_at       TEXT,
    last_seen_ip       TEXT,
    last_flashed_at    TEXT,
    known_disks        TEXT,
    known_disks_at     TEXT,
    lshw               TEXT,
    lshw_at            TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE labels (
    mac   TEXT NOT NULL REFERENCES machines (mac) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (mac, label)
);
CREATE INDEX labels_label ON labels (label);

CREATE TABLE events (
    id           SERIAL_ID,
    ts           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    source_ip    TEXT,
    summary      TEXT NOT NULL,
    details      TEXT,
    acknowledged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_subject ON events (subject_kind, subject_id, id);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_ts ON events (ts);

CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
