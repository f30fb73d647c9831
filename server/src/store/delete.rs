//! Deleting runs (DeleteRun, and retention's pruning), in one transaction
//! on the writer's connection.
//!
//! A replay stores only what it ran: the nodes it reuses are read from its
//! source run, and through it from the source's source. So a run is in use
//! by every run forked from it, directly or not, and by the experiments
//! that name it. Deleting one of those would break them: an explicit
//! delete refuses it, naming them, unless cascading, which deletes them
//! too; retention leaves such a run alone until they are old as well.
//! Contents (workflows, variables, artifacts) are stored once by digest
//! and shared: one goes when no row is left that names it.

use super::db::{Arg, Backend, Query, Row, numbered, postgres_args, q, sqlite_args};
use super::rows::Fields;
use super::writer::Conn;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::{Micros, RunStatus};
use std::collections::{BTreeMap, BTreeSet};

/// What to delete.
#[derive(Clone, Debug)]
pub enum DeleteSpec {
    /// These runs (full ids); what uses them is refused unless `cascade`.
    Runs { ids: Vec<String>, cascade: bool },
    /// Of these runs, each whose users (runs forked from it, experiments)
    /// all finished before `before` as well, with those users.
    Expired { ids: Vec<String>, before: Micros },
}

/// What a delete removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deleted {
    pub runs: Vec<String>,
    pub experiments: Vec<String>,
    /// Stored contents no longer named by anything, and their bytes.
    pub contents: u64,
    pub content_bytes: i64,
}

struct RunRow {
    pk: i64,
    status: RunStatus,
    finished_at: Option<Micros>,
}

impl Conn {
    async fn fetch(&mut self, query: Query<'_>) -> EngineResult<Vec<Row>> {
        Ok(match self {
            Conn::Sqlite(conn) => sqlx::query_with(&query.sql, sqlite_args(query.args)?)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Postgres(conn) => {
                sqlx::query_with(&numbered(&query.sql), postgres_args(query.args)?)
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(Row::Postgres)
                    .collect()
            }
        })
    }

    async fn run(&mut self, query: Query<'_>) -> EngineResult<u64> {
        Ok(match self {
            Conn::Sqlite(conn) => sqlx::query_with(&query.sql, sqlite_args(query.args)?)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            Conn::Postgres(conn) => {
                sqlx::query_with(&numbered(&query.sql), postgres_args(query.args)?)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            }
        })
    }

    fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }
}

/// `(?, ?, …)` for `n` values.
fn marks(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

fn args<'a>(values: impl IntoIterator<Item = &'a String>) -> Vec<Arg<'a>> {
    values.into_iter().map(|v| Arg::from(v.as_str())).collect()
}

/// Deletes what `spec` asks, in one transaction: all of it or nothing.
pub(super) async fn delete(conn: &mut Conn, spec: &DeleteSpec) -> EngineResult<Deleted> {
    let begin = match conn.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    conn.run(q(begin, [])).await?;
    match delete_in(conn, spec).await {
        Ok(deleted) => {
            conn.run(q("COMMIT", [])).await?;
            Ok(deleted)
        }
        Err(e) => {
            let _ = conn.run(q("ROLLBACK", [])).await;
            Err(e)
        }
    }
}

async fn delete_in(conn: &mut Conn, spec: &DeleteSpec) -> EngineResult<Deleted> {
    let roots = match spec {
        DeleteSpec::Runs { ids, .. } | DeleteSpec::Expired { ids, .. } => ids,
    };
    let mut doomed: BTreeMap<String, RunRow> = BTreeMap::new();
    let mut experiments: BTreeSet<String> = BTreeSet::new();
    for root in roots {
        if doomed.contains_key(root) {
            continue;
        }
        let (users, used_by) = users_of(conn, root).await?;
        if !users.contains_key(root) {
            match spec {
                DeleteSpec::Runs { .. } => return Err(EngineError::run_not_found(root)),
                DeleteSpec::Expired { .. } => continue,
            }
        };
        match spec {
            DeleteSpec::Runs { cascade, .. } => {
                let others: Vec<&String> = users
                    .keys()
                    .filter(|id| *id != root && !roots.contains(id))
                    .collect();
                if !cascade && (!others.is_empty() || !used_by.is_empty()) {
                    return Err(in_use(root, &others, &used_by));
                }
                // An experiment still running would write to what is gone.
                if !experiments_finished_before(conn, &used_by, Micros::MAX).await? {
                    return Err(EngineError::failed_precondition(format!(
                        "Run '{root}' is named by an experiment that is still running ({}); cancel it or let it finish first",
                        used_by.iter().cloned().collect::<Vec<_>>().join(", ")
                    ))
                    .reason(Reason::StateConflict)
                    .meta("runId", root)
                    .meta("experimentIds", used_by.iter().cloned().collect::<Vec<_>>().join(",")));
                }
                if let Some((id, r)) = users.iter().find(|(_, r)| !r.status.is_finished()) {
                    return Err(EngineError::failed_precondition(format!(
                        "Run '{id}' is {}; only finished runs can be deleted{}",
                        r.status,
                        if id == root {
                            String::new()
                        } else {
                            format!(" (it is a replay of '{root}')")
                        }
                    ))
                    .reason(Reason::RunNotFinished)
                    .meta("runId", id.clone()));
                }
            }
            DeleteSpec::Expired { before, .. } => {
                let old = |at: Option<Micros>| at.is_some_and(|at| at < *before);
                let runs_old = users
                    .values()
                    .all(|r| r.status.is_finished() && old(r.finished_at));
                let experiments_old = experiments_finished_before(conn, &used_by, *before).await?;
                if !runs_old || !experiments_old {
                    continue;
                }
            }
        }
        experiments.extend(used_by);
        doomed.extend(users);
    }
    if doomed.is_empty() {
        return Ok(Deleted::default());
    }
    remove(conn, doomed, experiments).await
}

/// `root` and every run forked from it, directly or not (BTreeMap by id),
/// and the experiments that name any of them. An unknown root gives an
/// empty map.
async fn users_of(
    conn: &mut Conn,
    root: &str,
) -> EngineResult<(BTreeMap<String, RunRow>, BTreeSet<String>)> {
    let mut found = BTreeMap::new();
    let mut frontier: Vec<String> = Vec::new();
    for row in conn
        .fetch(q(
            "SELECT pk, id, status, finished_at FROM runs WHERE id = ?",
            [root.into()],
        ))
        .await?
    {
        let (id, run) = run_row(&row)?;
        frontier.push(id.clone());
        found.insert(id, run);
    }
    while !frontier.is_empty() {
        let sql = format!(
            "SELECT pk, id, status, finished_at FROM runs WHERE forked_from IN {}",
            marks(frontier.len())
        );
        let rows = conn.fetch(q(sql, args(&frontier))).await?;
        frontier.clear();
        for row in rows {
            let (id, run) = run_row(&row)?;
            if let std::collections::btree_map::Entry::Vacant(slot) = found.entry(id.clone()) {
                slot.insert(run);
                frontier.push(id);
            }
        }
    }
    let mut experiments = BTreeSet::new();
    let ids: Vec<String> = found.keys().cloned().collect();
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT DISTINCT experiment_id FROM experiment_items WHERE source_run_id IN {m} OR replay_run_id IN {m}",
            m = marks(chunk.len())
        );
        let mut values = args(chunk);
        values.extend(args(chunk));
        for row in conn.fetch(q(sql, values)).await? {
            experiments.insert(Fields::keyed_by_pk("experiment_items", &row).get("experiment_id")?);
        }
    }
    Ok((found, experiments))
}

fn run_row(row: &Row) -> EngineResult<(String, RunRow)> {
    let f = Fields::keyed_by_pk("runs", row);
    let status: i64 = f.get("status")?;
    Ok((
        f.get("id")?,
        RunRow {
            pk: f.get("pk")?,
            status: RunStatus::from_i64(status).ok_or_else(|| EngineError::Corrupt {
                table: "runs",
                column: "status",
                row: "a run to delete".into(),
                problem: format!("{status} is not a run status"),
            })?,
            finished_at: f.get_or_null("finished_at")?,
        },
    ))
}

async fn experiments_finished_before(
    conn: &mut Conn,
    ids: &BTreeSet<String>,
    before: Micros,
) -> EngineResult<bool> {
    if ids.is_empty() {
        return Ok(true);
    }
    let sql = format!(
        "SELECT COUNT(*) AS n FROM experiments WHERE id IN {} AND (finished_at IS NULL OR finished_at >= ?)",
        marks(ids.len())
    );
    let mut values = args(ids);
    values.push(before.into());
    let rows = conn.fetch(q(sql, values)).await?;
    let n: i64 = Fields::keyed_by_pk("experiments", &rows[0]).get("n")?;
    Ok(n == 0)
}

fn in_use(root: &str, runs: &[&String], experiments: &BTreeSet<String>) -> EngineError {
    let mut users = Vec::new();
    if !runs.is_empty() {
        users.push(format!(
            "run{} {} reuse{} its outputs",
            if runs.len() == 1 { "" } else { "s" },
            runs.iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", "),
            if runs.len() == 1 { "s" } else { "" },
        ));
    }
    if !experiments.is_empty() {
        users.push(format!(
            "experiment{} {} name{} it",
            if experiments.len() == 1 { "" } else { "s" },
            experiments
                .iter()
                .map(|e| format!("'{e}'"))
                .collect::<Vec<_>>()
                .join(", "),
            if experiments.len() == 1 { "s" } else { "" },
        ));
    }
    let mut err = EngineError::failed_precondition(format!(
        "Run '{root}' is in use: {}. Delete with cascade to delete them too",
        users.join("; ")
    ))
    .reason(Reason::RunInUse)
    .meta("runId", root)
    .meta(
        "runIds",
        runs.iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
    )
    .meta(
        "experimentIds",
        experiments.iter().cloned().collect::<Vec<_>>().join(","),
    );
    for r in runs {
        err = err.precondition(
            "IN_USE",
            (*r).clone(),
            format!("run '{r}' reuses outputs of '{root}'"),
        );
    }
    for e in experiments {
        err = err.precondition(
            "IN_USE",
            e.clone(),
            format!("experiment '{e}' names '{root}'"),
        );
    }
    err
}

async fn remove(
    conn: &mut Conn,
    doomed: BTreeMap<String, RunRow>,
    experiments: BTreeSet<String>,
) -> EngineResult<Deleted> {
    let pks: Vec<i64> = doomed.values().map(|r| r.pk).collect();
    let ids: Vec<String> = doomed.keys().cloned().collect();
    let postgres = conn.backend() == Backend::Postgres;
    // The contents these rows name: candidates to go once the rows have.
    let mut digests: BTreeSet<String> = BTreeSet::new();
    for chunk in pks.chunks(400) {
        let m = marks(chunk.len());
        let values = || chunk.iter().map(|&pk| Arg::from(pk)).collect::<Vec<_>>();
        for row in conn
            .fetch(q(
                format!("SELECT workflow_sha256 AS sha256 FROM runs WHERE pk IN {m} UNION SELECT variables_sha256 FROM runs WHERE pk IN {m} UNION SELECT sha256 FROM artifacts WHERE run_pk IN {m}"),
                [values(), values(), values()].concat(),
            ))
            .await?
        {
            if let Some(sha) = Fields::keyed_by_pk("contents", &row).get_or_null::<String>("sha256")? {
                digests.insert(sha);
            }
        }
    }
    let experiment_ids: Vec<String> = experiments.iter().cloned().collect();
    for chunk in experiment_ids.chunks(400) {
        let m = marks(chunk.len());
        if postgres {
            conn.run(q(
                format!("DELETE FROM commands WHERE experiment_id IN {m}"),
                args(chunk),
            ))
            .await?;
        }
        conn.run(q(
            format!("DELETE FROM experiment_items WHERE experiment_id IN {m}"),
            args(chunk),
        ))
        .await?;
        conn.run(q(
            format!("DELETE FROM experiments WHERE id IN {m}"),
            args(chunk),
        ))
        .await?;
    }
    for chunk in pks.chunks(400) {
        let m = marks(chunk.len());
        let values = || chunk.iter().map(|&pk| Arg::from(pk)).collect::<Vec<_>>();
        let mut tables = vec!["events", "artifacts", "node_executions"];
        if postgres {
            tables.push("commands");
        }
        for table in tables {
            conn.run(q(
                format!("DELETE FROM {table} WHERE run_pk IN {m}"),
                values(),
            ))
            .await?;
        }
    }
    if postgres {
        for chunk in ids.chunks(400) {
            conn.run(q(
                format!(
                    "DELETE FROM worker_tasks WHERE run_id IN {}",
                    marks(chunk.len())
                ),
                args(chunk),
            ))
            .await?;
        }
    }
    // One statement for all: a replay and its source go together, and a
    // reference between two deleted rows is checked once both are gone.
    let all = pks.iter().map(|&pk| Arg::from(pk)).collect::<Vec<_>>();
    conn.run(q(
        format!("DELETE FROM runs WHERE pk IN {}", marks(pks.len())),
        all,
    ))
    .await?;
    let mut deleted = Deleted {
        runs: ids,
        experiments: experiment_ids,
        ..Deleted::default()
    };
    for sha in &digests {
        let rows = conn
            .fetch(q(
                "SELECT size FROM contents WHERE sha256 = ?
                 AND NOT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = ?)
                 AND NOT EXISTS (SELECT 1 FROM runs WHERE workflow_sha256 = ?)
                 AND NOT EXISTS (SELECT 1 FROM runs WHERE variables_sha256 = ?)",
                [
                    sha.as_str().into(),
                    sha.as_str().into(),
                    sha.as_str().into(),
                    sha.as_str().into(),
                ],
            ))
            .await?;
        if let Some(row) = rows.first() {
            let size: i64 = Fields::keyed_by_pk("contents", row).get("size")?;
            conn.run(q(
                "DELETE FROM contents WHERE sha256 = ?",
                [sha.as_str().into()],
            ))
            .await?;
            deleted.contents += 1;
            deleted.content_bytes += size;
        }
    }
    Ok(deleted)
}
