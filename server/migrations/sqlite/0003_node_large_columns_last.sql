-- A node's config, prompt and inputs move to the end of its row. SQLite
-- stores a row's columns in order and spills a large row onto overflow
-- pages: any column after a 100 KB input was only reachable by reading
-- through it, so reading the states of a thousand nodes (as planning a
-- replay does) read every input too. After them, nothing needs reading.
--
-- The table is rebuilt (SQLite cannot reorder columns) the way SQLite
-- documents it: with foreign keys off while the table artifacts refer to
-- is replaced (store::migrate turns them off around the migrations: the
-- pragma cannot change inside a transaction), and the references checked
-- before the transaction commits.

CREATE TABLE node_executions_new (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    run_pk INTEGER NOT NULL REFERENCES runs(pk),
    node_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status INTEGER NOT NULL,
    agent TEXT NOT NULL,
    model TEXT,
    input_artifacts TEXT NOT NULL DEFAULT '[]',
    output_artifacts TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    error_origin INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    latency_ms INTEGER,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    -- JSON list of {number, started_at, finished_at, error, error_origin, worker}.
    attempts TEXT NOT NULL DEFAULT '[]',
    blocked_by TEXT NOT NULL DEFAULT '[]',
    -- Large, and last.
    config TEXT NOT NULL DEFAULT '{}',
    prompt TEXT,
    inputs TEXT,
    UNIQUE (run_pk, node_id)
);

INSERT INTO node_executions_new (
    pk, id, run_pk, node_id, position, status, agent, model, input_artifacts, output_artifacts,
    error, error_origin, started_at, finished_at, latency_ms, input_tokens, output_tokens, cost_usd,
    attempt_count, attempts, blocked_by, config, prompt, inputs)
SELECT
    pk, id, run_pk, node_id, position, status, agent, model, input_artifacts, output_artifacts,
    error, error_origin, started_at, finished_at, latency_ms, input_tokens, output_tokens, cost_usd,
    attempt_count, attempts, blocked_by, config, prompt, inputs
FROM node_executions;

DROP TABLE node_executions;
ALTER TABLE node_executions_new RENAME TO node_executions;

-- Any reference left dangling would make this fail: nothing commits.
CREATE TEMP TABLE foreign_key_violations (tbl TEXT NOT NULL, must_be_empty TEXT NOT NULL);
INSERT INTO temp.foreign_key_violations SELECT "table", NULL FROM pragma_foreign_key_check;
DROP TABLE temp.foreign_key_violations;
