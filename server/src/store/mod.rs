//! Durable state in SQLite (WAL, foreign keys on). All writes go through one
//! connection behind a mutex, each as a `WriteBatch` committed in a single
//! transaction, so a node completion (content + artifact + node row + event)
//! is atomic. Reads use a separate pool and never wait for the writer.

mod read;
mod rows;
#[cfg(test)]
mod tests;

pub use read::{RunFilter, RunRef};

use crate::error::EngineResult;
use crate::model::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::Mutex;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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

impl Writer {
    async fn conn(&mut self) -> EngineResult<&mut SqliteConnection> {
        if self.conn.is_none() {
            self.conn = Some(SqliteConnection::connect_with(&self.options).await?);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Drops the connection after a failed write; closing it rolls back
    /// whatever SQLite still holds open.
    fn reset(&mut self) {
        self.conn = None;
    }
}

/// Options of the store beyond its path.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Caps the database at this many pages (`PRAGMA max_page_count`), so a
    /// deployment can bound its size; writes past it fail like a full disk.
    pub max_page_count: Option<u32>,
}

/// Everything one step of the executor writes, committed atomically.
#[derive(Default)]
pub struct WriteBatch {
    pub contents: Vec<(String, std::sync::Arc<[u8]>)>,
    pub artifacts: Vec<(i64, Option<i64>, Artifact)>,
    pub nodes: Vec<NodeExecution>,
    pub run: Option<Run>,
    pub events: Vec<(i64, Event)>,
}

impl WriteBatch {
    /// Appends `other`; a node row written twice keeps its latest state.
    pub fn merge(&mut self, other: WriteBatch) {
        self.contents.extend(other.contents);
        self.artifacts.extend(other.artifacts);
        for node in other.nodes {
            match self.nodes.iter_mut().find(|n| n.pk == node.pk) {
                Some(slot) => *slot = node,
                None => self.nodes.push(node),
            }
        }
        if other.run.is_some() {
            self.run = other.run;
        }
        self.events.extend(other.events);
    }

    /// Records one output of node execution `rec`: its content (stored once
    /// per sha256) and a new artifact. Returns the artifact id.
    #[allow(clippy::too_many_arguments)]
    pub fn add_output(
        &mut self,
        run_pk: i64,
        rec: &NodeExecution,
        name: &str,
        content: &str,
        media_type: &str,
        origin: ArtifactOrigin,
        derived_from: Vec<String>,
        now: Micros,
    ) -> String {
        let bytes: std::sync::Arc<[u8]> = std::sync::Arc::from(content.as_bytes());
        let sha = sha256_hex(&bytes);
        let artifact = Artifact {
            id: new_id("art"),
            run_id: rec.run_id.clone(),
            node_id: rec.node_id.clone(),
            node_execution_id: Some(rec.id.clone()),
            name: name.to_string(),
            media_type: media_type.to_string(),
            size: bytes.len() as i64,
            sha256: sha.clone(),
            origin,
            derived_from,
            created_at: now,
        };
        let id = artifact.id.clone();
        self.contents.push((sha, bytes));
        self.artifacts.push((run_pk, Some(rec.pk), artifact));
        id
    }

    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
            && self.artifacts.is_empty()
            && self.nodes.is_empty()
            && self.run.is_none()
            && self.events.is_empty()
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
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
        MIGRATOR
            .run_direct(&mut writer)
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

    /// Commits a batch in one transaction. On failure nothing of it is
    /// stored and the write connection is replaced.
    pub async fn commit(&self, batch: &WriteBatch) -> EngineResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        let result = commit_batch(writer.conn().await?, batch).await;
        if result.is_err() {
            writer.reset();
        }
        result
    }

    /// Inserts a new run with its workflow snapshot and the node executions
    /// it will run, assigning their primary keys, and `then` (what is
    /// already decided of the run: overridden outputs, carried skips) in
    /// the same transaction. The run, records, artifacts and events in
    /// `then` may carry pk 0;
    /// they get the keys just assigned. Returns the run's pk; nothing is
    /// stored when it fails.
    pub async fn insert_run(
        &self,
        run: &Run,
        workflow: &str,
        nodes: &mut [NodeExecution],
        then: Option<&mut WriteBatch>,
    ) -> EngineResult<i64> {
        let mut writer = self.writer.lock().await;
        let result = insert_run_rows(writer.conn().await?, run, workflow, nodes, then).await;
        if result.is_err() {
            writer.reset();
            for node in nodes.iter_mut() {
                node.pk = 0;
            }
        }
        result
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

async fn commit_batch(conn: &mut SqliteConnection, batch: &WriteBatch) -> EngineResult<()> {
    let mut tx = conn.begin().await?;
    write_batch(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(())
}

async fn write_batch(tx: &mut rows::Tx<'_>, batch: &WriteBatch) -> EngineResult<()> {
    for (sha, data) in &batch.contents {
        sqlx::query("INSERT OR IGNORE INTO contents (sha256, size, data) VALUES (?, ?, ?)")
            .bind(sha)
            .bind(data.len() as i64)
            .bind(&data[..])
            .execute(&mut **tx)
            .await?;
    }
    if let Some(run) = &batch.run {
        rows::write_run(tx, run).await?;
    }
    for node in &batch.nodes {
        rows::update_node(tx, node).await?;
    }
    for (run_pk, node_pk, art) in &batch.artifacts {
        rows::insert_artifact(tx, *run_pk, *node_pk, art).await?;
    }
    rows::insert_events(tx, &batch.events).await?;
    Ok(())
}

async fn insert_run_rows(
    conn: &mut SqliteConnection,
    run: &Run,
    workflow: &str,
    nodes: &mut [NodeExecution],
    then: Option<&mut WriteBatch>,
) -> EngineResult<i64> {
    let mut tx = conn.begin().await?;
    sqlx::query("INSERT OR IGNORE INTO contents (sha256, size, data) VALUES (?, ?, ?)")
        .bind(&run.workflow_sha256)
        .bind(workflow.len() as i64)
        .bind(workflow.as_bytes())
        .execute(&mut *tx)
        .await?;
    let pk = rows::insert_run(&mut tx, run).await?;
    for node in nodes.iter_mut() {
        node.pk = rows::insert_node(&mut tx, pk, node).await?;
    }
    if let Some(batch) = then {
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
        write_batch(&mut tx, batch).await?;
    }
    tx.commit().await?;
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
