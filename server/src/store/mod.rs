//! Durable state in SQLite (WAL, foreign keys on). All writes go through one
//! connection behind a mutex, each as a `WriteBatch` committed in a single
//! transaction, so a node completion (content + artifact + node row + event)
//! is atomic. Reads use a separate pool and never wait for the writer.

mod read;
mod rows;

pub use read::{RunFilter, RunRef};

use crate::engine::model::*;
use crate::error::EngineResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::Mutex;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Store {
    writer: Mutex<SqliteConnection>,
    reader: SqlitePool,
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
    pub async fn open(path: &Path) -> EngineResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                crate::error::EngineError::Internal(format!(
                    "cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .statement_cache_capacity(256);
        let mut writer = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run_direct(&mut writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader,
        })
    }

    /// Commits a batch in one transaction.
    pub async fn commit(&self, batch: &WriteBatch) -> EngineResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        for (sha, data) in &batch.contents {
            sqlx::query("INSERT OR IGNORE INTO contents (sha256, size, data) VALUES (?, ?, ?)")
                .bind(sha)
                .bind(data.len() as i64)
                .bind(&data[..])
                .execute(&mut *tx)
                .await?;
        }
        if let Some(run) = &batch.run {
            rows::write_run(&mut tx, run).await?;
        }
        for node in &batch.nodes {
            rows::update_node(&mut tx, node).await?;
        }
        for (run_pk, node_pk, art) in &batch.artifacts {
            rows::insert_artifact(&mut tx, *run_pk, *node_pk, art).await?;
        }
        rows::insert_events(&mut tx, &batch.events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts a new run with its workflow snapshot and the node executions
    /// it will run, assigning their primary keys; returns the run's pk.
    pub async fn insert_run(
        &self,
        run: &Run,
        workflow: &str,
        nodes: &mut [NodeExecution],
    ) -> EngineResult<i64> {
        let mut conn = self.writer.lock().await;
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
        tx.commit().await?;
        Ok(pk)
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}
