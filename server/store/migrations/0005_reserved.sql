-- Reserved for branch fleet-cache's 0005_rollouts.sql, so that delta's 0006
-- applies on a branch without it: delete this file when merging fleet-cache.
SELECT 1;
