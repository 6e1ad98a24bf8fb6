-- What a delta reflash downloaded (the blocks its disk lacked), as the
-- machine reports it; NULL for a full flash (docs/delta.md).

ALTER TABLE cycles ADD COLUMN bytes_fetched BIGINT;
