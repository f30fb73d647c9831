-- Experiments: one change replayed over many recorded runs. An item is
-- one source run and its replay; the replay's link is written in the
-- transaction that stores the replay run, so a restart never starts an
-- item's replay twice nor loses one.

CREATE TABLE experiments (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status INTEGER NOT NULL,
    -- JSON: the selection, the change, the concurrency and the score node,
    -- as asked.
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE INDEX experiments_by_status ON experiments(status, id);

CREATE TABLE experiment_items (
    experiment_id TEXT NOT NULL REFERENCES experiments(id),
    position INTEGER NOT NULL,
    source_run_id TEXT NOT NULL REFERENCES runs(id),
    replay_run_id TEXT REFERENCES runs(id),
    status INTEGER NOT NULL,
    reason TEXT,
    PRIMARY KEY (experiment_id, position)
);
