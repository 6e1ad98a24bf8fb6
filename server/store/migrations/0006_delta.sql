-- A binding option: the machine's image is written by delta reflash (only the
-- blocks its disk lacks; docs/delta.md), 1, or in full, 0.

ALTER TABLE machines ADD COLUMN delta INTEGER NOT NULL DEFAULT 0;
