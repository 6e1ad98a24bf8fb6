-- Cycles: one row per flash or inventory attempt, replacing bty-web's
-- saw_flasher_boot bit; offers: the script each boot got, so that an iPXE
-- retry gets the same one; images: the digest each bound ref had when the
-- catalogs were last read, to notice a rolling tag that moved. Machines learn
-- their power driver, what the last verified flash wrote, and quarantine.

ALTER TABLE machines ADD COLUMN power TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN disk_ref TEXT;
ALTER TABLE machines ADD COLUMN disk_sha256 TEXT;
ALTER TABLE machines ADD COLUMN disk_serial TEXT;
ALTER TABLE machines ADD COLUMN disk_plan_id BIGINT;
ALTER TABLE machines ADD COLUMN disk_at TEXT;
ALTER TABLE machines ADD COLUMN quarantined_at TEXT;
ALTER TABLE machines ADD COLUMN quarantine_reason TEXT;

CREATE TABLE cycles (
    id                 SERIAL_ID,
    mac                TEXT NOT NULL,
    kind               TEXT NOT NULL,
    state              TEXT NOT NULL,
    cause              TEXT NOT NULL,
    attempt            INTEGER NOT NULL,
    image_ref          TEXT,
    image_name         TEXT,
    image_sha256       TEXT,
    target_disk_serial TEXT,
    token_hash         TEXT,
    created_at         TEXT NOT NULL,
    offered_at         TEXT,
    booted_at          TEXT,
    planned_at         TEXT,
    write_started_at   TEXT,
    ended_at           TEXT,
    reason             TEXT,
    class              TEXT,
    sha256             TEXT,
    bytes_written      BIGINT,
    bytes_total        BIGINT
);
CREATE INDEX cycles_mac ON cycles (mac, id);
CREATE INDEX cycles_ended ON cycles (ended_at);

CREATE TABLE offers (
    mac        TEXT NOT NULL,
    boot_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    cycle_id   BIGINT,
    script     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (mac, boot_id)
);
CREATE INDEX offers_created ON offers (created_at);

CREATE TABLE images (
    ref     TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
