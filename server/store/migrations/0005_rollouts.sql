-- Staged rollouts: an image promoted to a label a few machines at a time.
-- The rollout's row is the lock its admissions take (an UPDATE of it comes
-- first), so "at most max_parallel flashing" holds across servers on one
-- database. A member waits, flashes (admitted: its binding moved to the
-- image), and ends done, failed (its flash failed for good), skipped or
-- cancelled. after_cycle is the machine's newest cycle id when it was
-- admitted: its rollout flash is a later one.

CREATE TABLE rollouts (
    id           SERIAL_ID,
    label        TEXT NOT NULL,
    image_ref    TEXT NOT NULL,
    image_name   TEXT NOT NULL,
    max_parallel INTEGER NOT NULL,
    max_failures INTEGER NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    actor        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    ended_at     TEXT
);
CREATE INDEX rollouts_open ON rollouts (ended_at, id);

CREATE TABLE rollout_machines (
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    mac         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    state       TEXT NOT NULL,
    after_cycle BIGINT NOT NULL DEFAULT 0,
    reason      TEXT,
    admitted_at TEXT,
    ended_at    TEXT,
    PRIMARY KEY (rollout_id, mac)
);
CREATE INDEX rollout_machines_mac ON rollout_machines (mac, state);
