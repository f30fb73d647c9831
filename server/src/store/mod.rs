//! Durable state in SQLite (WAL, foreign keys on). All writes go through one
//! connection behind a mutex, each committed in a single transaction run
//! as one script (see `write`), so a node completion (content + artifact +
//! node row + event) is atomic. Reads use a separate pool and never wait
//! for the writer.

mod batch;
mod errors;
mod migrate;
mod read;
mod rows;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_variables;
mod write;

pub use batch::{WriteBatch, sha256_hex};
pub use read::{RunFilter, RunRef};

use crate::error::EngineResult;
use crate::model::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use write::Script;

pub struct Store {
    writer: Mutex<Writer>,
    reader: SqlitePool,
}

/// The one write connection. After a failed transaction it is dropped and
/// opened again on the next write: SQLite rolls a transaction back by
/// itself on some errors (SQLITE_FULL among them), and a connection whose
/// idea of the open transaction differs from SQLite's would turn the next
/// BEGIN into a savepoint that never commits.
struct Writer {
    conn: Option<SqliteConnection>,
    options: SqliteConnectOptions,
}

/// The writer, held for one transaction. Unless `succeeded` is called,
/// dropping it drops the connection, which rolls back whatever it left
/// open: a write that failed, or whose future was dropped midway (sqlx
/// stops a script when nobody awaits its results, before its COMMIT).
struct Held<'a> {
    writer: MutexGuard<'a, Writer>,
    succeeded: bool,
}

impl Held<'_> {
    async fn conn(&mut self) -> EngineResult<&mut SqliteConnection> {
        let writer = &mut *self.writer;
        if writer.conn.is_none() {
            writer.conn = Some(SqliteConnection::connect_with(&writer.options).await?);
        }
        Ok(writer.conn.as_mut().expect("connected above"))
    }

    fn settle<T>(mut self, result: EngineResult<T>) -> EngineResult<T> {
        self.succeeded = result.is_ok();
        result
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.succeeded {
            self.writer.conn = None;
        }
    }
}

/// Options of the store beyond its path.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Caps the database at this many pages (`PRAGMA max_page_count`), so a
    /// deployment can bound its size; writes past it fail like a full disk.
    pub max_page_count: Option<u32>,
}

impl Store {
    pub async fn open(path: &Path, opts: &StoreOptions) -> EngineResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                crate::error::EngineError::Internal(format!(
                    "cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let mut options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .statement_cache_capacity(256);
        if let Some(pages) = opts.max_page_count {
            options = options.pragma("max_page_count", pages.to_string());
        }
        let unwritable = |e: &dyn std::fmt::Display| {
            crate::error::EngineError::Unavailable(format!(
                "{e}; the database must be writable: check that the file, its directory and any -wal/-shm files \
                 beside it can be written by this user, on a file system mounted read-write"
            ))
        };
        let mut writer = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| unwritable(&e))?;
        migrate::run(&mut writer)
            .await
            .map_err(|e| unwritable(&e))?;
        probe_writable(&mut writer)
            .await
            .map_err(|e| unwritable(&e))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone().read_only(true))
            .await?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn: Some(writer),
                options,
            }),
            reader,
        })
    }

    async fn hold(&self) -> Held<'_> {
        Held {
            writer: self.writer.lock().await,
            succeeded: false,
        }
    }

    /// Commits a batch in one transaction. On failure nothing of it is
    /// stored.
    pub async fn commit(&self, batch: &WriteBatch) -> EngineResult<()> {
        self.commit_all(std::slice::from_ref(batch)).await
    }

    /// Commits batches in one transaction, as if one after the other. On
    /// failure nothing of them is stored.
    pub async fn commit_all(&self, batches: &[WriteBatch]) -> EngineResult<()> {
        if batches.iter().all(WriteBatch::is_empty) {
            return Ok(());
        }
        let mut script = Script::transaction();
        write::batches(&mut script, batches)?;
        script.push("COMMIT");
        let mut held = self.hold().await;
        let result = match held.conn().await {
            Ok(conn) => script.execute(conn).await,
            Err(e) => Err(e),
        };
        held.settle(result)
    }

    /// Inserts a new run with its workflow snapshot and the node executions
    /// it will run, assigning their primary keys, and `then` (what is
    /// already decided of the run: overridden outputs, carried skips) in
    /// the same transaction. The run, records, artifacts and events in
    /// `then` may carry pk 0;
    /// they get the keys just assigned. Returns the run's pk; nothing is
    /// stored when it fails, and the nodes keep pk 0.
    pub async fn insert_run(
        &self,
        run: &Run,
        workflow: &str,
        nodes: &mut [NodeExecution],
        then: Option<&mut WriteBatch>,
    ) -> EngineResult<i64> {
        let mut held = self.hold().await;
        let result = match held.conn().await {
            Ok(conn) => insert_run_rows(conn, run, workflow, nodes, then).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            for node in nodes.iter_mut() {
                node.pk = 0;
            }
        }
        held.settle(result)
    }
}

/// The first query opens the transaction and reads the next free keys (the
/// write lock is held from BEGIN IMMEDIATE on, so they stay free); the
/// rest write every row and commit.
async fn insert_run_rows(
    conn: &mut SqliteConnection,
    run: &Run,
    workflow: &str,
    nodes: &mut [NodeExecution],
    then: Option<&mut WriteBatch>,
) -> EngineResult<i64> {
    let (last_run, last_node) = write::begin_with_last_keys(conn).await?;
    let pk = last_run + 1;
    for (node, key) in nodes.iter_mut().zip(last_node + 1..) {
        node.pk = key;
    }
    let mut then = then;
    if let Some(batch) = then.as_deref_mut() {
        let pk_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.pk);
        for rec in &mut batch.nodes {
            if let Some(node_pk) = pk_of(&rec.id) {
                rec.pk = node_pk;
            }
        }
        if let Some(r) = &mut batch.run {
            r.pk = pk;
        }
        for (run_pk, _) in &mut batch.events {
            *run_pk = pk;
        }
        for (run_pk, node_pk, art) in &mut batch.artifacts {
            *run_pk = pk;
            if let Some(id) = &art.node_execution_id {
                *node_pk = pk_of(id).or(*node_pk);
            }
        }
    }
    let (variables_sha256, variables) = write::variables_content(run)?;
    let mut script = Script::continuing();
    write::contents(
        &mut script,
        [
            (run.workflow_sha256.as_str(), workflow.as_bytes()),
            (variables_sha256.as_str(), variables.as_bytes()),
        ]
        .into_iter(),
    )?;
    write::insert_run(&mut script, pk, run, &variables_sha256)?;
    write::insert_nodes(&mut script, pk, nodes)?;
    if let Some(batch) = then.as_deref() {
        write::batches(&mut script, std::slice::from_ref(batch))?;
    }
    script.push("COMMIT");
    script.execute(conn).await?;
    Ok(pk)
}

/// Refuses a database this process cannot write (a read-only file or
/// directory, or a read-only mount): SQLite opens those read-only without
/// complaint, and every later write would fail.
async fn probe_writable(conn: &mut SqliteConnection) -> EngineResult<()> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    // Rewriting the header's user_version is the smallest real write.
    sqlx::query(&format!("PRAGMA user_version = {version}"))
        .execute(&mut *conn)
        .await
        .map_err(|e| crate::error::EngineError::Unavailable(format!("cannot write: {e}")))?;
    Ok(())
}
