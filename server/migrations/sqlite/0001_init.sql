-- retake's durable state. Integer primary keys keep child rows small:
-- a replay that reuses 1,000 nodes adds only its own rows and events.
-- Times are unix microseconds. Status and kind columns hold the numbers
-- of the matching retake.v1 enums.

CREATE TABLE contents (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);

CREATE TABLE runs (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workflow_name TEXT NOT NULL,
    workflow_description TEXT NOT NULL DEFAULT '',
    -- The snapshot is content-addressed: a replay of the same workflow stores no copy.
    workflow_sha256 TEXT NOT NULL REFERENCES contents(sha256),
    files TEXT NOT NULL DEFAULT '{}',
    variables TEXT NOT NULL DEFAULT '{}',
    status INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    total_nodes INTEGER NOT NULL DEFAULT 0,
    completed_nodes INTEGER NOT NULL DEFAULT 0,
    failed_nodes INTEGER NOT NULL DEFAULT 0,
    skipped_nodes INTEGER NOT NULL DEFAULT 0,
    reused_nodes INTEGER NOT NULL DEFAULT 0,
    cancelled_nodes INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    failure_node TEXT,
    failure_message TEXT,
    failure_origin INTEGER,
    forked_from TEXT REFERENCES runs(id),
    forked_at_step TEXT,
    -- JSON: roots, swaps, overrides, changed variables, replay set.
    replay TEXT
);
CREATE INDEX runs_by_status ON runs(status, id);
CREATE INDEX runs_by_workflow ON runs(workflow_name, id);
CREATE INDEX runs_by_fork ON runs(forked_from, id);

CREATE TABLE node_executions (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    run_pk INTEGER NOT NULL REFERENCES runs(pk),
    node_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status INTEGER NOT NULL,
    agent TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    prompt TEXT,
    model TEXT,
    inputs TEXT,
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
    -- JSON list of {number, started_at, finished_at, error, error_origin}.
    attempts TEXT NOT NULL DEFAULT '[]',
    blocked_by TEXT NOT NULL DEFAULT '[]',
    UNIQUE (run_pk, node_id)
);

CREATE TABLE artifacts (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    run_pk INTEGER NOT NULL REFERENCES runs(pk),
    node_execution_pk INTEGER REFERENCES node_executions(pk),
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES contents(sha256),
    origin INTEGER NOT NULL,
    derived_from TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);
CREATE INDEX artifacts_by_run ON artifacts(run_pk, pk);

CREATE TABLE events (
    run_pk INTEGER NOT NULL REFERENCES runs(pk),
    sequence INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    time INTEGER NOT NULL,
    node_id TEXT,
    -- JSON of the event's optional fields; NULL when it has none.
    payload TEXT,
    PRIMARY KEY (run_pk, sequence)
) WITHOUT ROWID;
