//! The SQL of writes.
//!
//! sqlx runs each query on its SQLite worker thread, and every query costs
//! a hand-off between that thread and tokio: the larger part of a small
//! commit's CPU. So a commit is as few queries as it can be, and rows of a
//! kind go in multi-row statements. A small commit is one query.
//!
//! A commit takes whatever queued up, so its counts of rows vary, and a
//! statement of a new count is prepared anew, compiled row by row: for a
//! large commit that cost as much as executing it. So rows go in
//! statements of a fixed `CHUNK_ROWS`, each its own query, prepared once
//! and kept; the rows left over go with the statements around them. Rows
//! are written in an order that satisfies their foreign keys as they go:
//! deferring the checks would make SQLite search the referring tables,
//! some by unindexed columns, for every row referred to. (One JSON parameter unpacked by `json_each` would make any
//! count one constant statement, but extracting its columns costs three to
//! four times as much, and SQLite reads some decimals as a neighbouring
//! double.)

use super::WriteBatch;
use super::db::{Arg, Backend, numbered, postgres_args, sqlite_args};
use super::writer::Conn;
use crate::error::EngineResult;
use crate::model::*;
use std::collections::{HashMap, HashSet};

/// Rows per statement of a full chunk.
const CHUNK_ROWS: usize = 64;

/// SQLite's limit of variables in one statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_VARIABLES: usize = 32766;
const _: () = assert!(CHUNK_ROWS * NODE_COLUMNS.len() <= MAX_VARIABLES);

/// Queries longer than this are not kept prepared: a script that large
/// hardly recurs, and would push the common small ones out of the cache.
const MAX_CACHED_SQL: usize = 16 * 1024;

/// Statements and their arguments, run as one query on SQLite. PostgreSQL
/// takes one statement with arguments per query: there each statement
/// (its end in `sql` and in `args`) goes on its own.
#[derive(Default)]
pub(super) struct Query<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
    ends: Vec<(usize, usize)>,
}

impl<'a> Query<'a> {
    fn push(&mut self, statement: &str) {
        self.sql.push_str(statement);
        self.sql.push_str(";\n");
        self.ends.push((self.sql.len(), self.args.len()));
    }

    fn bind(&mut self, value: impl Into<Arg<'a>>) -> EngineResult<()> {
        self.args.push(value.into());
        Ok(())
    }

    async fn execute(self, conn: &mut Conn) -> EngineResult<()> {
        match conn {
            Conn::Sqlite(conn) => {
                sqlx::query_with(&self.sql, sqlite_args(self.args)?)
                    .persistent(self.sql.len() <= MAX_CACHED_SQL)
                    .execute(&mut *conn)
                    .await?;
            }
            Conn::Postgres(conn) => {
                let mut args = self.args.into_iter();
                let (mut sql_at, mut args_at) = (0, 0);
                for (sql_end, args_end) in self.ends {
                    let statement = numbered(&self.sql[sql_at..sql_end]);
                    let taken: Vec<Arg> = args.by_ref().take(args_end - args_at).collect();
                    sqlx::query_with(&statement, postgres_args(taken)?)
                        .persistent(statement.len() <= MAX_CACHED_SQL)
                        .execute(&mut *conn)
                        .await?;
                    (sql_at, args_at) = (sql_end, args_end);
                }
            }
        }
        Ok(())
    }
}

/// The statements of one write, in order, as queries: each full chunk of
/// rows a query of its own, the statements between them grouped.
pub(super) struct Script<'a> {
    pub(super) backend: Backend,
    /// On a shared database: the server writing (owner, lease in
    /// microseconds), which claims what it creates.
    pub(super) claim: Option<(&'a str, Micros)>,
    /// Queries complete, to run in order.
    queries: Vec<Query<'a>>,
    /// Statements since the last full chunk: the next query.
    pending: Query<'a>,
}

impl<'a> Script<'a> {
    /// A script that is a transaction of its own.
    pub(super) fn transaction(backend: Backend) -> Self {
        let mut script = Self::continuing(backend);
        script.push(match backend {
            // Takes the write lock at once: a transaction that read first
            // and wrote later could fail where waiting would have worked.
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        });
        script
    }

    /// A script inside a transaction already open.
    pub(super) fn continuing(backend: Backend) -> Self {
        Self {
            backend,
            claim: None,
            queries: Vec::new(),
            pending: Query::default(),
        }
    }

    pub(super) fn push(&mut self, statement: &str) {
        self.pending.push(statement);
    }

    /// A statement of one value.
    pub(super) fn push_with(&mut self, statement: &str, value: Arg<'a>) {
        self.pending.args.push(value);
        self.pending.push(statement);
    }

    fn bind(&mut self, value: impl Into<Arg<'a>>) -> EngineResult<()> {
        self.pending.bind(value)
    }

    /// `head (?, …), (?, …) tail` for `rows`, `columns` values each, a
    /// statement per `CHUNK_ROWS`; `bind` binds one row.
    fn rows<'r, R>(
        &mut self,
        head: &str,
        columns: usize,
        tail: &str,
        rows: &'r [R],
        mut bind: impl FnMut(&mut Query<'a>, &'r R) -> EngineResult<()>,
    ) -> EngineResult<()> {
        let tuple = format!("({})", vec!["?"; columns].join(", "));
        for chunk in rows.chunks(CHUNK_ROWS) {
            let mut sql =
                String::with_capacity(head.len() + tail.len() + chunk.len() * (tuple.len() + 2));
            sql.push_str(head);
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&tuple);
            }
            sql.push_str(tail);
            if chunk.len() < CHUNK_ROWS {
                for row in chunk {
                    bind(&mut self.pending, row)?;
                }
                self.pending.push(&sql);
                continue;
            }
            let mut query = Query::default();
            for row in chunk {
                bind(&mut query, row)?;
            }
            query.push(&sql);
            if !self.pending.sql.is_empty() {
                self.queries.push(std::mem::take(&mut self.pending));
            }
            self.queries.push(query);
        }
        Ok(())
    }

    pub(super) async fn execute(mut self, conn: &mut Conn) -> EngineResult<()> {
        if !self.pending.sql.is_empty() {
            self.queries.push(self.pending);
        }
        for query in self.queries {
            query.execute(conn).await?;
        }
        Ok(())
    }
}

/// Opens a write transaction on SQLite and returns the largest keys of
/// runs and of node executions: the next ones stay free while it lasts.
pub(super) async fn begin_with_last_keys(
    conn: &mut sqlx::SqliteConnection,
) -> EngineResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "BEGIN IMMEDIATE;
         SELECT (SELECT COALESCE(MAX(pk), 0) FROM runs), (SELECT COALESCE(MAX(pk), 0) FROM node_executions)",
    )
    .fetch_one(conn)
    .await?)
}

fn json<T: serde::Serialize>(value: &T) -> EngineResult<String> {
    Ok(serde_json::to_string(value)?)
}

/// Appends the statements writing `batches` but their contents, which
/// the caller writes first with `contents`.
pub(super) fn updates<'a>(script: &mut Script<'a>, batches: &[&'a WriteBatch]) -> EngineResult<()> {
    let runs = last_by_key(batches.iter().filter_map(|b| b.run.as_ref()), |r| r.pk);
    update_runs(script, &runs)?;
    let nodes = last_by_key(batches.iter().flat_map(|b| &b.nodes), |n| n.pk);
    update_nodes(script, &nodes)?;
    let artifacts: Vec<_> = batches.iter().flat_map(|b| &b.artifacts).collect();
    insert_artifacts(script, &artifacts)?;
    let events: Vec<_> = batches.iter().flat_map(|b| &b.events).collect();
    insert_events(script, &events)?;
    for experiment in batches.iter().flat_map(|b| &b.experiments) {
        upsert_experiment(script, experiment)?;
    }
    for item in batches.iter().flat_map(|b| &b.experiment_items) {
        upsert_experiment_item(script, item)?;
    }
    Ok(())
}

/// Experiments are few and written rarely: a statement each.
fn upsert_experiment<'a>(script: &mut Script<'a>, e: &'a Experiment) -> EngineResult<()> {
    script.bind(e.id.as_str())?;
    script.bind(e.name.as_str())?;
    script.bind(e.status.as_i64())?;
    script.bind(json(&e.spec)?)?;
    script.bind(e.created_at)?;
    script.bind(e.finished_at)?;
    match script.claim {
        // The server creating it runs it; an update leaves the owner be.
        Some((owner, lease)) => {
            script.bind(owner)?;
            script.bind(lease)?;
            script.push(
                "INSERT INTO experiments (id, name, status, spec, created_at, finished_at, owner, lease_expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, (extract(epoch from clock_timestamp()) * 1000000)::bigint + ?)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at",
            );
        }
        None => script.push(
            "INSERT INTO experiments (id, name, status, spec, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at",
        ),
    }
    Ok(())
}

fn upsert_experiment_item<'a>(script: &mut Script<'a>, i: &'a ExperimentItem) -> EngineResult<()> {
    script.bind(i.experiment_id.as_str())?;
    script.bind(i.position)?;
    script.bind(i.source_run_id.as_str())?;
    script.bind(i.replay_run_id.as_deref())?;
    script.bind(i.status.as_i64())?;
    script.bind(i.reason.as_deref())?;
    script.push(
        "INSERT INTO experiment_items (experiment_id, position, source_run_id, replay_run_id, status, reason)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (experiment_id, position) DO UPDATE SET
             replay_run_id = excluded.replay_run_id, status = excluded.status, reason = excluded.reason",
    );
    Ok(())
}

/// The last of the items with each key, in the order of their first
/// appearance.
fn last_by_key<'a, T>(items: impl Iterator<Item = &'a T>, key: impl Fn(&T) -> i64) -> Vec<&'a T> {
    let mut out: Vec<&T> = Vec::new();
    let mut at: HashMap<i64, usize> = HashMap::new();
    for item in items {
        match at.get(&key(item)) {
            Some(&i) => out[i] = item,
            None => {
                at.insert(key(item), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// Contents by sha256, each stored once.
pub(super) fn contents<'a>(
    script: &mut Script<'a>,
    items: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> EngineResult<()> {
    let mut seen = HashSet::new();
    let unique: Vec<_> = items.filter(|(sha, _)| seen.insert(*sha)).collect();
    script.rows(
        "INSERT INTO contents (sha256, size, data) VALUES ",
        3,
        " ON CONFLICT DO NOTHING",
        &unique,
        |s, (sha, data)| {
            s.bind(*sha)?;
            s.bind(data.len() as i64)?;
            s.bind(*data)
        },
    )
}

/// A run's variables as the content they are stored as: (sha256, JSON).
pub(super) fn variables_content(run: &Run) -> EngineResult<(String, String)> {
    let text = json(&run.variables)?;
    Ok((super::sha256_hex(text.as_bytes()), text))
}

/// The row of a new run, under key `pk`; its variables are the content
/// `variables_sha256`. With `claim` (owner, lease in microseconds), the
/// run is that server's to execute from the start (PostgreSQL only).
pub(super) fn insert_run<'a>(
    script: &mut Script<'a>,
    pk: i64,
    run: &'a Run,
    variables_sha256: &'a str,
    claim: Option<(&'a str, Micros)>,
    request: Option<&'a super::RequestKey>,
) -> EngineResult<()> {
    let replay = run.replay.as_ref();
    script.bind(pk)?;
    script.bind(run.id.as_str())?;
    script.bind(run.workflow_name.as_str())?;
    script.bind(run.workflow_description.as_str())?;
    script.bind(run.workflow_sha256.as_str())?;
    script.bind(json(&run.files)?)?;
    script.bind(variables_sha256)?;
    script.bind(run.status.as_i64())?;
    script.bind(run.created_at)?;
    script.bind(run.counts.total)?;
    script.bind(replay.map(|r| r.forked_from.as_str()))?;
    script.bind(replay.map(|r| r.forked_at_step.as_str()))?;
    script.bind(replay.map(json).transpose()?)?;
    script.bind(request.map(|r| r.id.as_str()))?;
    script.bind(request.map(|r| r.sha256.as_str()))?;
    match claim {
        Some((owner, expires)) => {
            script.bind(owner)?;
            script.bind(expires)?;
            script.push(
                "INSERT INTO runs (pk, id, workflow_name, workflow_description, workflow_sha256, files, variables_sha256,
                    status, created_at, total_nodes, forked_from, forked_at_step, replay, request_id, request_sha256,
                    owner, lease_expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (extract(epoch from clock_timestamp()) * 1000000)::bigint + ?)",
            );
        }
        None => script.push(
            "INSERT INTO runs (pk, id, workflow_name, workflow_description, workflow_sha256, files, variables_sha256,
                status, created_at, total_nodes, forked_from, forked_at_step, replay, request_id, request_sha256)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ),
    }
    Ok(())
}

/// The columns a run's update writes, its key first.
const RUN_COLUMNS: [&str; 16] = [
    "pk",
    "status",
    "started_at",
    "finished_at",
    "total_nodes",
    "completed_nodes",
    "failed_nodes",
    "skipped_nodes",
    "reused_nodes",
    "cancelled_nodes",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "failure_node",
    "failure_message",
    "failure_origin",
];

/// Every run's new state in one statement per chunk, as for nodes: a
/// commit shared by many runs is not a statement (on PostgreSQL, a round
/// trip) per run.
fn update_runs<'a>(script: &mut Script<'a>, runs: &[&'a Run]) -> EngineResult<()> {
    static SQL: std::sync::LazyLock<(String, String)> =
        std::sync::LazyLock::new(|| update_from_values("runs", &RUN_COLUMNS));
    let (head, tail) = &*SQL;
    script.rows(head, RUN_COLUMNS.len(), tail, runs, |s, run| {
        let c = &run.counts;
        let f = run.failure.as_ref();
        s.bind(run.pk)?;
        s.bind(run.status.as_i64())?;
        s.bind(run.started_at)?;
        s.bind(run.finished_at)?;
        s.bind(c.total)?;
        s.bind(c.completed)?;
        s.bind(c.failed)?;
        s.bind(c.skipped)?;
        s.bind(c.reused)?;
        s.bind(c.cancelled)?;
        s.bind(run.usage.input_tokens)?;
        s.bind(run.usage.output_tokens)?;
        s.bind(run.usage.cost_usd)?;
        s.bind(f.map(|f| f.node_id.as_str()))?;
        s.bind(f.map(|f| f.message.as_str()))?;
        s.bind(f.map(|f| f.origin.as_i64()))
    })
}

/// `WITH v(pk, …) AS (VALUES` and `) UPDATE table SET … FROM v`: rows'
/// new values by key, `columns[0]` being the key.
fn update_from_values(table: &str, columns: &[&str]) -> (String, String) {
    let sets: Vec<String> = columns[1..]
        .iter()
        .map(|c| format!("{c} = v.{c}"))
        .collect();
    (
        format!("WITH v({}) AS (VALUES ", columns.join(", ")),
        format!(
            ") UPDATE {table} SET {} FROM v WHERE {table}.{key} = v.{key}",
            sets.join(", "),
            key = columns[0]
        ),
    )
}

/// New node rows, with the keys already assigned to them and to their
/// runs: (run pk, node).
pub(super) fn insert_nodes<'a>(
    script: &mut Script<'a>,
    nodes: &[(i64, &'a NodeExecution)],
) -> EngineResult<()> {
    script.rows(
        "INSERT INTO node_executions (pk, id, run_pk, node_id, position, status, agent, config) VALUES ",
        8,
        "",
        nodes,
        |s, &(run_pk, n)| {
            s.bind(n.pk)?;
            s.bind(n.id.as_str())?;
            s.bind(run_pk)?;
            s.bind(n.node_id.as_str())?;
            s.bind(n.position)?;
            s.bind(n.status.as_i64())?;
            s.bind(n.agent.as_str())?;
            s.bind(n.config_json.as_str())
        },
    )
}

/// The columns a node's update writes, its key first.
const NODE_COLUMNS: [&str; 20] = [
    "pk",
    "status",
    "agent",
    "config",
    "prompt",
    "model",
    "inputs",
    "input_artifacts",
    "output_artifacts",
    "error",
    "error_origin",
    "started_at",
    "finished_at",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attempt_count",
    "attempts",
    "blocked_by",
];

/// `WITH v(pk, …) AS (VALUES` and `) UPDATE node_executions SET … FROM v`:
/// every node's new state in one statement per chunk.
fn update_nodes_sql() -> &'static (String, String) {
    static SQL: std::sync::LazyLock<(String, String)> =
        std::sync::LazyLock::new(|| update_from_values("node_executions", &NODE_COLUMNS));
    &SQL
}

fn update_nodes<'a>(script: &mut Script<'a>, nodes: &[&'a NodeExecution]) -> EngineResult<()> {
    let (head, tail) = update_nodes_sql();
    script.rows(head, NODE_COLUMNS.len(), tail, nodes, |s, n| {
        s.bind(n.pk)?;
        s.bind(n.status.as_i64())?;
        s.bind(n.agent.as_str())?;
        s.bind(n.config_json.as_str())?;
        s.bind(n.prompt.as_deref())?;
        s.bind(n.model.as_deref())?;
        s.bind(n.inputs_json.as_deref())?;
        s.bind(json(&n.input_artifacts)?)?;
        s.bind(json(&n.output_artifacts)?)?;
        s.bind(n.error.as_deref())?;
        s.bind(n.error_origin.map(FailureOrigin::as_i64))?;
        s.bind(n.started_at)?;
        s.bind(n.finished_at)?;
        s.bind(n.latency_ms)?;
        s.bind(n.usage.input_tokens)?;
        s.bind(n.usage.output_tokens)?;
        s.bind(n.usage.cost_usd)?;
        s.bind(n.attempt_count)?;
        s.bind(json(&n.attempts)?)?;
        s.bind(json(&n.blocked_by)?)
    })
}

fn insert_artifacts<'a>(
    script: &mut Script<'a>,
    artifacts: &[&'a (i64, Option<i64>, Artifact)],
) -> EngineResult<()> {
    script.rows(
        "INSERT INTO artifacts (id, run_pk, node_execution_pk, node_id, name, media_type, size, sha256,
            origin, derived_from, created_at) VALUES ",
        11,
        "",
        artifacts,
        |s, (run_pk, node_pk, a)| {
            s.bind(a.id.as_str())?;
            s.bind(*run_pk)?;
            s.bind(*node_pk)?;
            s.bind(a.node_id.as_str())?;
            s.bind(a.name.as_str())?;
            s.bind(a.media_type.as_str())?;
            s.bind(a.size)?;
            s.bind(a.sha256.as_str())?;
            s.bind(a.origin.as_i64())?;
            s.bind(json(&a.derived_from)?)?;
            s.bind(a.created_at)
        },
    )
}

fn insert_events<'a>(script: &mut Script<'a>, events: &[&'a (i64, Event)]) -> EngineResult<()> {
    script.rows(
        "INSERT INTO events (run_pk, sequence, kind, time, node_id, payload) VALUES ",
        6,
        "",
        events,
        |s, (run_pk, e)| {
            s.bind(*run_pk)?;
            s.bind(e.sequence)?;
            s.bind(e.kind.as_i64())?;
            s.bind(e.time)?;
            s.bind(e.node_id.as_deref())?;
            // NULL for an event without optional fields: most of them.
            s.bind(if e.detail.is_empty() {
                None
            } else {
                Some(json(&e.detail)?)
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node and run updates look each row up by key: scanning the
    /// table for every commit would make a commit as slow as the database
    /// is large.
    #[tokio::test]
    async fn the_row_updates_search_by_key() {
        use sqlx::Connection;
        let fx = super::super::tests::Fixture::new().await;
        let mut conn = sqlx::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(&fx.path),
        )
        .await
        .unwrap();
        let runs = update_from_values("runs", &RUN_COLUMNS);
        for (table, (head, tail), columns) in [
            ("node_executions", update_nodes_sql(), NODE_COLUMNS.len()),
            ("runs", &runs, RUN_COLUMNS.len()),
        ] {
            // Two rows, as a commit of two steps writes them.
            let tuple = format!("({})", vec!["NULL"; columns].join(", "));
            let sql = format!("EXPLAIN QUERY PLAN {head}{tuple}, {tuple}{tail}");
            let explained: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap();
            let details: Vec<&str> = explained.iter().map(|r| r.3.as_str()).collect();
            assert!(
                details
                    .iter()
                    .any(|d| d.contains(&format!("SEARCH {table} USING INTEGER PRIMARY KEY"))),
                "{details:?}"
            );
            assert!(
                !details.iter().any(|d| d.contains(&format!("SCAN {table}"))),
                "{details:?}"
            );
        }
    }
}
