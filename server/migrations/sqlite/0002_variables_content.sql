-- A run's variables become a content, like its workflow snapshot: a replay
-- with unchanged variables stores no second copy.
--
-- SQLite has no sha256, so before this migration the store fills the
-- connection's temp.variables_digests with the digest of every variables
-- text the runs hold (store::migrate). Applied without it (another tool),
-- the check below fails and nothing changes.

CREATE TEMP TABLE IF NOT EXISTS variables_digests (
    variables TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL
);

INSERT OR IGNORE INTO contents (sha256, size, data)
SELECT sha256, length(CAST(variables AS BLOB)), CAST(variables AS BLOB) FROM temp.variables_digests;

-- Always set. (SQLite adds a column with a REFERENCES clause only as
-- nullable; reads report a NULL as corruption.)
ALTER TABLE runs ADD COLUMN variables_sha256 TEXT REFERENCES contents(sha256);

UPDATE runs SET variables_sha256 =
    (SELECT d.sha256 FROM temp.variables_digests d WHERE d.variables = runs.variables);

-- A run left without a digest would lose its variables: fail instead.
CREATE TEMP TABLE runs_without_variables_digest (id TEXT NOT NULL, digest TEXT NOT NULL);
INSERT INTO temp.runs_without_variables_digest
SELECT id, variables_sha256 FROM runs WHERE variables_sha256 IS NULL;
DROP TABLE temp.runs_without_variables_digest;

ALTER TABLE runs DROP COLUMN variables;
DROP TABLE temp.variables_digests;
