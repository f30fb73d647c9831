-- A StartRun or ReplayRun may name itself (request_id): a retry with the
-- same id finds the run the first call stored instead of starting another.
-- The digest of what was asked tells a retry from a different request that
-- reuses the id.

ALTER TABLE runs ADD COLUMN request_id TEXT;
ALTER TABLE runs ADD COLUMN request_sha256 TEXT;
CREATE UNIQUE INDEX runs_by_request ON runs(request_id) WHERE request_id IS NOT NULL;
