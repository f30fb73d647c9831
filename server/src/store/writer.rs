//! The one write connection, owned by a task that commits for every run
//! at once.
//!
//! Writes arrive as requests (a run's batches, a new run); the task takes
//! all that queued while the previous transaction ran and commits them in
//! one. On these machines a transaction costs mostly hand-offs between
//! tokio and sqlx's SQLite thread, a few per query whatever the rows, so
//! many small runs share one transaction's cost instead of each paying its
//! own. The task owns the connection, so a caller that stops waiting does
//! not cut a transaction short: what was asked is written whole or not at
//! all.
//!
//! Requests are independent: when a shared transaction fails, each request
//! is tried again alone, so a request fails only where it would have failed
//! by itself: one run's bad row never fails another run's write, and on a
//! nearly full disk a small write is not refused for a large one beside it.

use super::db::Backend;
use super::delete::{self, DeleteSpec, Deleted};
use super::write::{self, Script};
use super::{NewRun, WriteBatch, leases};
use crate::error::{EngineError, EngineResult};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// A transaction takes requests until it holds about this many bytes
/// (`WriteBatch::approx_size`); a larger request goes alone.
const GROUP_BYTES: usize = 32 << 20;

pub(super) enum Request {
    /// Batches to commit together, in order; they come back with the
    /// outcome.
    Commit {
        batches: Vec<WriteBatch>,
        reply: oneshot::Sender<(Vec<WriteBatch>, EngineResult<()>)>,
    },
    /// A new run: its keys are assigned in the transaction.
    Insert {
        new: Box<NewRun>,
        reply: oneshot::Sender<EngineResult<Box<NewRun>>>,
    },
    /// Runs to delete (store::delete), in a transaction of their own.
    Delete {
        spec: DeleteSpec,
        reply: oneshot::Sender<EngineResult<Deleted>>,
    },
    /// One step of SQLite's incremental vacuum: at most `pages` free pages
    /// given back to the file system; answers how many were.
    Vacuum {
        pages: u32,
        reply: oneshot::Sender<EngineResult<i64>>,
    },
}

impl Request {
    /// Whether it goes in a transaction of its own, never grouped.
    fn alone(&self) -> bool {
        matches!(self, Self::Delete { .. } | Self::Vacuum { .. })
    }

    fn size(&self) -> usize {
        match self {
            Self::Delete { .. } | Self::Vacuum { .. } => 0,
            Self::Commit { batches, .. } => batches.iter().map(WriteBatch::approx_size).sum(),
            Self::Insert { new, .. } => {
                new.workflow.len() + new.nodes.len() * 256 + new.then.approx_size()
            }
        }
    }

    fn answer(self, result: EngineResult<()>) {
        match self {
            Self::Commit { batches, reply } => {
                let _ = reply.send((batches, result));
            }
            Self::Insert { new, reply } => {
                let _ = reply.send(result.map(|()| new));
            }
            Self::Delete { reply, .. } => {
                let _ = reply.send(result.map(|()| Deleted::default()));
            }
            Self::Vacuum { reply, .. } => {
                let _ = reply.send(result.map(|()| 0));
            }
        }
    }
}

/// What the writer did, for tests and figures.
#[derive(Default)]
pub(super) struct Counters {
    pub transactions: AtomicU64,
    pub requests: AtomicU64,
}

/// The write connection, on either backend.
pub(super) enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// How the writer connects again.
pub(super) enum Connect {
    Sqlite(SqliteConnectOptions),
    /// With the server's claim on the runs it creates, and the fence every
    /// write passes (see `leases`).
    Postgres(PgConnectOptions, leases::Claim),
}

/// The connection; dropped after a failed transaction and opened again on
/// the next one. SQLite rolls a transaction back by itself on some errors
/// (SQLITE_FULL among them), and a connection whose idea of the open
/// transaction differs from SQLite's would turn the next BEGIN into a
/// savepoint that never commits.
struct Writer {
    conn: Option<Conn>,
    connect: Connect,
    counters: Arc<Counters>,
}

pub(super) fn spawn(
    conn: Conn,
    connect: Connect,
    counters: Arc<Counters>,
) -> mpsc::UnboundedSender<Request> {
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = Writer {
        conn: Some(conn),
        connect,
        counters,
    };
    tokio::spawn(serve(writer, rx));
    tx
}

async fn serve(mut writer: Writer, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut held: Option<Request> = None;
    loop {
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let first = match first {
            Request::Delete { spec, reply } => {
                let result = writer.delete(&spec).await;
                let _ = reply.send(result);
                continue;
            }
            Request::Vacuum { pages, reply } => {
                let result = writer.vacuum(pages).await;
                let _ = reply.send(result);
                continue;
            }
            other => other,
        };
        let mut bytes = first.size();
        let mut group = vec![first];
        while bytes < GROUP_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            let size = next.size();
            if next.alone() || bytes + size > GROUP_BYTES {
                held = Some(next);
                break;
            }
            bytes += size;
            group.push(next);
        }
        match writer.write(&mut group).await {
            Ok(()) => group.into_iter().for_each(|r| r.answer(Ok(()))),
            Err(_) if group.len() > 1 => {
                for request in group {
                    let mut alone = vec![request];
                    let result = writer.write(&mut alone).await;
                    alone.pop().expect("one request").answer(result);
                }
            }
            Err(e) => group.into_iter().for_each(|r| r.answer(Err(e.clone()))),
        }
    }
}

impl Writer {
    async fn conn(&mut self) -> EngineResult<&mut Conn> {
        if self.conn.is_none() {
            self.conn = Some(match &self.connect {
                Connect::Sqlite(options) => {
                    Conn::Sqlite(SqliteConnection::connect_with(options).await?)
                }
                Connect::Postgres(options, _) => {
                    Conn::Postgres(PgConnection::connect_with(options).await?)
                }
            });
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    async fn delete(&mut self, spec: &DeleteSpec) -> EngineResult<Deleted> {
        let result = delete::delete(self.conn().await?, spec).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Pages given back (at most `pages`, never 0: 0 would mean all).
    async fn vacuum(&mut self, pages: u32) -> EngineResult<i64> {
        let Conn::Sqlite(conn) = self.conn().await? else {
            return Ok(0);
        };
        let free = "PRAGMA freelist_count";
        let (before,): (i64,) = sqlx::query_as(free).fetch_one(&mut *conn).await?;
        sqlx::query(&format!("PRAGMA incremental_vacuum({})", pages.max(1)))
            .execute(&mut *conn)
            .await?;
        let (after,): (i64,) = sqlx::query_as(free).fetch_one(&mut *conn).await?;
        Ok(before - after)
    }

    /// Writes `group` in one transaction. On failure nothing of it is
    /// stored, and new runs keep no keys.
    async fn write(&mut self, group: &mut [Request]) -> EngineResult<()> {
        let result = self.try_write(group).await;
        if result.is_err() {
            // The connection may hold a transaction SQLite rolled back,
            // or one a failed query left open: start afresh.
            self.conn = None;
            for request in group.iter_mut() {
                if let Request::Insert { new, .. } = request {
                    new.clear_keys();
                }
            }
        } else {
            self.counters.transactions.fetch_add(1, Ordering::Relaxed);
            self.counters
                .requests
                .fetch_add(group.len() as u64, Ordering::Relaxed);
        }
        result
    }

    async fn try_write(&mut self, group: &mut [Request]) -> EngineResult<()> {
        let claim = match &self.connect {
            Connect::Sqlite(_) => None,
            Connect::Postgres(_, claim) => Some(claim.clone()),
        };
        let conn = self.conn().await?;
        let inserts = group
            .iter()
            .filter(|r| matches!(r, Request::Insert { .. }))
            .count();
        let mut script = match conn {
            // New runs need keys: the first query opens the transaction and
            // reads the next free ones (the write lock is held from BEGIN
            // IMMEDIATE on, so they stay free).
            Conn::Sqlite(conn) if inserts > 0 => {
                let (mut last_run, last_node) = write::begin_with_last_keys(conn).await?;
                let mut node_keys = last_node + 1..;
                for request in group.iter_mut() {
                    if let Request::Insert { new, .. } = request {
                        last_run += 1;
                        new.assign_keys(last_run, &mut node_keys);
                    }
                }
                Script::continuing(Backend::Sqlite)
            }
            Conn::Sqlite(_) => Script::transaction(Backend::Sqlite),
            // Several servers insert at once: keys come from the tables'
            // sequences, which never hand out one twice.
            Conn::Postgres(conn) => {
                if inserts > 0 {
                    let runs: usize = inserts;
                    let nodes: usize = group
                        .iter()
                        .map(|r| match r {
                            Request::Insert { new, .. } => new.nodes.len(),
                            _ => 0,
                        })
                        .sum();
                    let mut run_keys = leases::next_keys(conn, "runs", runs).await?.into_iter();
                    let mut node_keys = leases::next_keys(conn, "node_executions", nodes)
                        .await?
                        .into_iter();
                    for request in group.iter_mut() {
                        if let Request::Insert { new, .. } = request {
                            let pk = run_keys.next().expect("a key per new run");
                            new.assign_keys(pk, &mut node_keys);
                        }
                    }
                }
                sqlx::query("BEGIN").execute(&mut *conn).await?;
                let claim = claim.as_ref().expect("a claim on PostgreSQL");
                leases::check(
                    conn,
                    claim,
                    group.iter().filter_map(|r| match r {
                        Request::Commit { batches, .. } => Some(batches),
                        _ => None,
                    }),
                )
                .await?;
                Script::continuing(Backend::Postgres)
            }
        };
        let lease = claim.as_ref().map(leases::Claim::lease_micros);
        script.claim = claim
            .as_ref()
            .zip(lease)
            .map(|(c, l)| (c.owner.as_str(), l));
        let mut new_runs = Vec::with_capacity(inserts);
        let mut batches: Vec<&WriteBatch> = Vec::new();
        for request in group.iter() {
            match request {
                Request::Insert { new, .. } => {
                    new_runs.push(new.as_ref());
                    batches.push(&new.then);
                }
                Request::Commit { batches: b, .. } => batches.extend(b),
                // Never grouped (Request::alone).
                Request::Delete { .. } | Request::Vacuum { .. } => {}
            }
        }
        let variables: Vec<(String, String)> = new_runs
            .iter()
            .map(|n| write::variables_content(&n.run))
            .collect::<EngineResult<_>>()?;
        write::contents(
            &mut script,
            new_runs
                .iter()
                .zip(&variables)
                .flat_map(|(n, (sha, text))| {
                    [
                        (n.run.workflow_sha256.as_str(), n.workflow.as_bytes()),
                        (sha.as_str(), text.as_bytes()),
                    ]
                })
                .chain(
                    batches
                        .iter()
                        .flat_map(|b| &b.contents)
                        .map(|(sha, data)| (sha.as_str(), &data[..])),
                ),
        )?;
        for (new, (sha, _)) in new_runs.iter().zip(&variables) {
            let owned = claim.as_ref().zip(lease).filter(|_| new.claimed);
            write::insert_run(
                &mut script,
                new.run.pk,
                &new.run,
                sha,
                owned.map(|(c, at)| (c.owner.as_str(), at)),
                new.request.as_ref(),
            )?;
        }
        let nodes: Vec<_> = new_runs
            .iter()
            .flat_map(|n| n.nodes.iter().map(move |node| (n.run.pk, node)))
            .collect();
        write::insert_nodes(&mut script, &nodes)?;
        write::updates(&mut script, &batches)?;
        if script.backend == Backend::Postgres {
            leases::notify(&mut script, &batches, &new_runs)?;
        }
        script.push("COMMIT");
        script.execute(conn).await
    }
}

/// Why a request got no answer: the writer task is gone (the runtime
/// shuts down). Not a storage error: retrying cannot help, and what was
/// asked may be lost with the task, so nothing may treat it as written.
pub(super) fn stopped() -> EngineError {
    EngineError::Internal("the store's writer stopped".into())
}
