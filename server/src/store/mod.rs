//! Durable state in SQLite (WAL, foreign keys on), the embedded default,
//! or in PostgreSQL, which several servers share (see `leases`). The
//! engine does not know which: the queries are written once (`db`).
//! All writes go through one connection owned by the writer task (see
//! `writer`), each request committed whole in one transaction, so a node
//! completion (content + artifact + node row + event) is atomic. Reads use
//! a separate pool and never wait for the writer.

mod batch;
mod db;
mod delete;
mod errors;
mod experiments;
mod leases;
mod migrate;
mod node_states;
mod read;
mod rows;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_leases;
#[cfg(test)]
mod tests_variables;
#[cfg(test)]
mod tests_writer;
mod worker_tasks;
mod write;
mod writer;

pub use batch::{WriteBatch, sha256_hex};
pub use db::Backend;
pub use delete::{DeleteSpec, Deleted};
pub use leases::{COMMANDS_CHANNEL, Claim, EVENTS_CHANNEL, RUNS_CHANNEL, TASKS_CHANNEL, Target};
pub use read::{RunFilter, RunRef};
pub use worker_tasks::{RelayedTask, TaskState};

use crate::error::EngineResult;
use crate::model::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, SqliteConnection};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use writer::Request;

#[derive(Clone)]
pub struct Store {
    writes: mpsc::UnboundedSender<Request>,
    counters: Arc<writer::Counters>,
    reader: db::Pool,
    /// On a shared database, this server's claim on the runs it executes.
    claim: Option<Claim>,
}

/// A run to store: its row, workflow text, node executions and what is
/// already decided of them (`then`: overridden outputs, carried skips,
/// first events). The run, records, artifacts and events in `then` may
/// carry pk 0: they get the keys assigned when it is stored.
pub struct NewRun {
    pub run: Run,
    pub workflow: String,
    pub nodes: Vec<NodeExecution>,
    pub then: WriteBatch,
    /// Whether the server storing it executes it. On a shared database a
    /// run not claimed is left for any server to claim.
    pub claimed: bool,
    /// The request that asks for it, when it names itself.
    pub request: Option<RequestKey>,
}

/// A StartRun's or ReplayRun's own id and the digest of what it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestKey {
    pub id: String,
    pub sha256: String,
}

impl NewRun {
    /// Gives the run key `pk` and its nodes the next of `node_keys`, and
    /// the rows of `then` the keys of what they refer to.
    fn assign_keys(&mut self, pk: i64, node_keys: &mut impl Iterator<Item = i64>) {
        self.run.pk = pk;
        for node in &mut self.nodes {
            node.pk = node_keys.next().expect("a key for every node");
        }
        let nodes = &self.nodes;
        let pk_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.pk);
        let then = &mut self.then;
        for rec in &mut then.nodes {
            if let Some(node_pk) = pk_of(&rec.id) {
                rec.pk = node_pk;
            }
        }
        if let Some(r) = &mut then.run {
            r.pk = pk;
        }
        for (run_pk, _) in &mut then.events {
            *run_pk = pk;
        }
        for (run_pk, node_pk, art) in &mut then.artifacts {
            *run_pk = pk;
            if let Some(id) = &art.node_execution_id {
                *node_pk = pk_of(id).or(*node_pk);
            }
        }
    }

    /// Back to no keys, after a transaction that failed.
    fn clear_keys(&mut self) {
        self.run.pk = 0;
        for node in &mut self.nodes {
            node.pk = 0;
        }
    }
}

/// Options of the store beyond where it is.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Caps the database at this many pages (`PRAGMA max_page_count`), so a
    /// deployment can bound its size; writes past it fail like a full disk.
    /// SQLite only.
    pub max_page_count: Option<u32>,
    /// Connections the readers share; 0 takes the default.
    pub pool_size: u32,
}

/// Reader connections when the options leave it open.
const DEFAULT_POOL_SIZE: u32 = 8;

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
            crate::error::EngineError::store_unavailable(format!(
                "{e}; the database must be writable: check that the file, its directory and any -wal/-shm files \
                 beside it can be written by this user, on a file system mounted read-write"
            ))
        };
        // Deleted runs' pages go back to the file system in small steps
        // between writes (vacuum_step), never in one long lock. Set by the
        // writer, which creates the database (a reader may not write); a
        // database created before this keeps its mode until an offline
        // VACUUM (retake-server --vacuum).
        let write_options = options
            .clone()
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental);
        let mut writer = SqliteConnection::connect_with(&write_options)
            .await
            .map_err(|e| unwritable(&e))?;
        migrate::run(&mut writer)
            .await
            .map_err(|e| unwritable(&e))?;
        probe_writable(&mut writer)
            .await
            .map_err(|e| unwritable(&e))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(pool_size(opts))
            .min_connections(1)
            .connect_with(options.clone().read_only(true))
            .await?;
        let counters = Arc::new(writer::Counters::default());
        Ok(Self {
            writes: writer::spawn(
                writer::Conn::Sqlite(writer),
                writer::Connect::Sqlite(write_options),
                counters.clone(),
            ),
            counters,
            reader: db::Pool::Sqlite(reader),
            claim: None,
        })
    }

    /// Opens a PostgreSQL database at `url` (`postgres://user:pass@host:port/db`,
    /// `sslmode` and the other libpq parameters as PostgreSQL documents
    /// them), brings its schema up to date and shares it with any other
    /// server on it: this one executes the runs `claim` names it owner of.
    pub async fn open_postgres(url: &str, opts: &StoreOptions, claim: Claim) -> EngineResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            crate::error::EngineError::invalid_argument(format!(
                "{url_shown} is not a PostgreSQL URL ({e})",
                url_shown = redact_url(url)
            ))
        })?;
        let unreachable = |e: &dyn std::fmt::Display| {
            crate::error::EngineError::store_unavailable(format!(
                "cannot use the PostgreSQL database at {}: {e}",
                redact_url(url)
            ))
        };
        // One connection first: it fails at once where the pool would
        // retry until its timeout.
        let writer = PgConnection::connect_with(&options)
            .await
            .map_err(|e| unreachable(&e))?;
        let reader = PgPoolOptions::new()
            .max_connections(pool_size(opts))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| unreachable(&e))?;
        migrate::run_postgres(&reader)
            .await
            .map_err(|e| unreachable(&e))?;
        let counters = Arc::new(writer::Counters::default());
        Ok(Self {
            writes: writer::spawn(
                writer::Conn::Postgres(writer),
                writer::Connect::Postgres(options, claim.clone()),
                counters.clone(),
            ),
            counters,
            reader: db::Pool::Postgres(reader),
            claim: Some(claim),
        })
    }

    /// Bytes the database takes (for SQLite the main file, without its
    /// write-ahead log), for the metrics.
    pub async fn size_bytes(&self) -> EngineResult<i64> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT p.page_count * s.page_size AS size FROM pragma_page_count() AS p, pragma_page_size() AS s"
            }
            Backend::Postgres => "SELECT pg_database_size(current_database()) AS size",
        };
        let row = self.reader.fetch_one(db::q(sql, [])).await?;
        rows::Fields::keyed_by_pk("database", &row).get("size")
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        self.reader.backend()
    }

    /// A connection that hears the other servers' notifications on a
    /// shared database; None on SQLite.
    pub async fn listener(&self) -> EngineResult<Option<sqlx::postgres::PgListener>> {
        match &self.reader {
            db::Pool::Sqlite(_) => Ok(None),
            db::Pool::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener
                    .listen_all([
                        EVENTS_CHANNEL,
                        RUNS_CHANNEL,
                        COMMANDS_CHANNEL,
                        TASKS_CHANNEL,
                    ])
                    .await?;
                Ok(Some(listener))
            }
        }
    }

    /// Commits a batch in one transaction and hands it back, durable. On
    /// failure nothing of it is stored.
    pub async fn commit(&self, batch: WriteBatch) -> EngineResult<WriteBatch> {
        let (mut back, result) = self.commit_all(vec![batch]).await;
        result.map(|()| back.pop().unwrap_or_default())
    }

    /// Commits batches in one transaction, as if one after the other, and
    /// hands them back (their events are the caller's to publish once
    /// durable). On failure nothing of them is stored.
    pub async fn commit_all(
        &self,
        batches: Vec<WriteBatch>,
    ) -> (Vec<WriteBatch>, EngineResult<()>) {
        if batches.iter().all(WriteBatch::is_empty) {
            return (batches, Ok(()));
        }
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(Request::Commit { batches, .. })) =
            self.writes.send(Request::Commit { batches, reply })
        {
            return (batches, Err(writer::stopped()));
        }
        answer
            .await
            .unwrap_or_else(|_| (Vec::new(), Err(writer::stopped())))
    }

    /// Stores a new run with its workflow snapshot, node executions and
    /// what is already decided of them, in one transaction, assigning
    /// their keys. Returns it with its keys; nothing is stored when it
    /// fails.
    pub async fn insert_run(&self, new: NewRun) -> EngineResult<NewRun> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Request::Insert {
                new: Box::new(new),
                reply,
            })
            .map_err(|_| writer::stopped())?;
        let new = answer.await.map_err(|_| writer::stopped())??;
        Ok(*new)
    }

    /// Deletes runs (see store::delete) in a transaction of their own.
    pub async fn delete_runs(&self, spec: DeleteSpec) -> EngineResult<Deleted> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Request::Delete { spec, reply })
            .map_err(|_| writer::stopped())?;
        answer.await.map_err(|_| writer::stopped())?
    }

    /// Gives up to `pages` free pages of a SQLite database back to the
    /// file system, between other writes; answers how many it gave (0 on
    /// PostgreSQL, which reclaims space itself, and on a database made
    /// before incremental vacuum, until an offline VACUUM).
    pub async fn vacuum_step(&self, pages: u32) -> EngineResult<i64> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Request::Vacuum { pages, reply })
            .map_err(|_| writer::stopped())?;
        answer.await.map_err(|_| writer::stopped())?
    }

    /// Runs that finished before `before`, oldest first, past `after` (the
    /// last of the page before: finish time and key), at most `limit`.
    pub async fn finished_before(
        &self,
        before: Micros,
        after: Option<(Micros, i64)>,
        limit: i64,
    ) -> EngineResult<Vec<(String, Micros, i64)>> {
        let (at, pk) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows = self
            .reader
            .fetch_all(db::q(
                "SELECT id, finished_at, pk FROM runs WHERE finished_at < ?
                 AND (finished_at > ? OR (finished_at = ? AND pk > ?))
                 ORDER BY finished_at, pk LIMIT ?",
                [before.into(), at.into(), at.into(), pk.into(), limit.into()],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let f = rows::Fields::keyed_by_pk("runs", row);
                Ok((f.get("id")?, f.get("finished_at")?, f.get("pk")?))
            })
            .collect()
    }

    /// Transactions committed and requests they carried, since the store
    /// opened.
    pub fn write_counts(&self) -> (u64, u64) {
        (
            self.counters.transactions.load(Ordering::Relaxed),
            self.counters.requests.load(Ordering::Relaxed),
        )
    }
}

fn pool_size(opts: &StoreOptions) -> u32 {
    if opts.pool_size == 0 {
        DEFAULT_POOL_SIZE
    } else {
        opts.pool_size
    }
}

/// A database URL fit for a message or a log: without its password.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "the database URL".into(),
    }
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
        .map_err(|e| crate::error::EngineError::store_unavailable(format!("cannot write: {e}")))?;
    Ok(())
}
