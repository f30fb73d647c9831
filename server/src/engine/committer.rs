//! A run's group committer: commits the driver's writes in order, merging
//! whatever queued up while the previous commit ran, and publishes their
//! events only once they are durable.
//!
//! When the store refuses a write for lack of space (or an I/O error) the
//! committer keeps the batch and retries it with backoff; meanwhile its
//! state is `Stalled`, and the driver starts no new node. Past the
//! configured timeout it gives up: the state becomes `Failed` with the
//! cause, and nothing of the refused batch is acknowledged.

use super::waits::Ack;
use super::{ActiveRun, EngineInner};
use crate::error::EngineError;
use crate::store::WriteBatch;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Batches a run's driver may hand over before waiting for the disk.
const QUEUE: usize = 16;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitState {
    Healthy,
    /// The store refuses writes; the committer is retrying.
    Stalled,
    /// The committer stopped; the cause is what the run records.
    Failed(String),
}

pub struct Committer {
    tx: Option<mpsc::Sender<(WriteBatch, Option<Ack>)>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    state: watch::Receiver<CommitState>,
}

impl Committer {
    pub fn start(engine: Arc<EngineInner>, active: Arc<ActiveRun>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (state_tx, state) = watch::channel(CommitState::Healthy);
        let handle = tokio::spawn(run(engine, active, rx, state_tx));
        Self {
            tx: Some(tx),
            handle: Some(handle),
            state,
        }
    }

    /// Why the committer stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        match &*self.state.borrow() {
            CommitState::Failed(cause) => Some(cause.clone()),
            _ => None,
        }
    }

    /// Waits while the store refuses writes; Err once the committer gave up.
    pub async fn writable(&mut self) -> Result<(), String> {
        let state = self
            .state
            .wait_for(|s| *s != CommitState::Stalled)
            .await
            .map(|s| s.clone())
            .unwrap_or(CommitState::Failed("the run committer stopped".into()));
        match state {
            CommitState::Failed(cause) => Err(cause),
            _ => Ok(()),
        }
    }

    /// Queues a batch; waits when the queue is full (the disk is behind).
    pub async fn send(&self, batch: WriteBatch, ack: Option<Ack>) -> Result<(), String> {
        if let Some(cause) = self.failure() {
            if let Some(ack) = ack {
                let _ = ack.send(Err(EngineError::Unavailable(cause.clone())));
            }
            return Err(cause);
        }
        let Some(tx) = &self.tx else {
            return Err("the run committer stopped".into());
        };
        if batch.is_empty() && ack.is_none() {
            return Ok(());
        }
        if let Err(mpsc::error::SendError((_, ack))) = tx.send((batch, ack)).await {
            let cause = self
                .failure()
                .unwrap_or_else(|| "the run committer stopped".into());
            if let Some(ack) = ack {
                let _ = ack.send(Err(EngineError::Unavailable(cause.clone())));
            }
            return Err(cause);
        }
        Ok(())
    }

    /// Closes the queue and waits until everything sent is durable.
    pub async fn close(&mut self) -> Result<(), String> {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .map_err(|e| format!("the run committer stopped: {e}"))?;
        }
        self.failure().map_or(Ok(()), Err)
    }
}

async fn run(
    engine: Arc<EngineInner>,
    active: Arc<ActiveRun>,
    mut rx: mpsc::Receiver<(WriteBatch, Option<Ack>)>,
    state: watch::Sender<CommitState>,
) {
    let timeout = engine.settings.disk_full_timeout;
    while let Some((mut batch, ack)) = rx.recv().await {
        let mut acks: Vec<Ack> = ack.into_iter().collect();
        while let Ok((more, ack)) = rx.try_recv() {
            batch.merge(more);
            acks.extend(ack);
        }
        let mut stalled_since: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let outcome = loop {
            match engine.store.commit(&batch).await {
                Ok(()) => break Ok(()),
                Err(e) if e.is_storage_unavailable() => {
                    let since = *stalled_since.get_or_insert_with(|| {
                        tracing::warn!(error = %e, "the store refuses writes; retrying");
                        state.send_replace(CommitState::Stalled);
                        Instant::now()
                    });
                    if since.elapsed() >= timeout {
                        break Err((e.to_string(), true));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the store refused a write");
                    let cause = "internal error while recording the run; see the server log";
                    break Err((cause.to_string(), false));
                }
            }
        };
        match outcome {
            Ok(()) => {
                if stalled_since.is_some() {
                    tracing::info!("the store takes writes again");
                    state.send_replace(CommitState::Healthy);
                }
                for (_, e) in batch.events {
                    let _ = active.events.send(e);
                }
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err((cause, storage)) => {
                for ack in acks {
                    let _ = ack.send(Err(if storage {
                        EngineError::Unavailable(cause.clone())
                    } else {
                        EngineError::Internal(cause.clone())
                    }));
                }
                state.send_replace(CommitState::Failed(cause));
                return;
            }
        }
    }
}
