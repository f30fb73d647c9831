//! A run's group committer: commits the driver's writes in order, all that
//! queued up while the previous commit ran in one transaction, and
//! publishes their events (and answers their acks) only once they are
//! durable.
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// Bytes of writes (as `WriteBatch::approx_size` counts them) a run's
/// driver may hand over before waiting for the disk. Small steps queue up
/// freely and are committed together; a batch larger than this waits until
/// everything before it is durable, then goes alone.
const QUEUE_BYTES: usize = 16 << 20;
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

/// A batch handed over, with its share of the queue's bytes.
type Queued = (WriteBatch, Option<Ack>, OwnedSemaphorePermit);

pub struct Committer {
    tx: Option<mpsc::UnboundedSender<Queued>>,
    /// The queue's free bytes; closed once the committer gave up.
    room: Arc<Semaphore>,
    handle: Option<tokio::task::JoinHandle<()>>,
    state: watch::Receiver<CommitState>,
}

impl Committer {
    pub fn start(engine: Arc<EngineInner>, active: Arc<ActiveRun>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(CommitState::Healthy);
        let room = Arc::new(Semaphore::new(QUEUE_BYTES));
        let handle = tokio::spawn(tracing::Instrument::in_current_span(run(
            engine,
            active,
            rx,
            state_tx,
            room.clone(),
        )));
        Self {
            tx: Some(tx),
            room,
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

    /// Queues a batch; waits while the queue holds too many bytes (the
    /// disk is behind).
    pub async fn send(&self, batch: WriteBatch, ack: Option<Ack>) -> Result<(), String> {
        let refuse = |ack: Option<Ack>| {
            let cause = self
                .failure()
                .unwrap_or_else(|| "the run committer stopped".into());
            if let Some(ack) = ack {
                let _ = ack.send(Err(EngineError::store_unavailable(cause.clone())));
            }
            Err(cause)
        };
        if self.failure().is_some() {
            return refuse(ack);
        }
        let Some(tx) = &self.tx else {
            return Err("the run committer stopped".into());
        };
        if batch.is_empty() && ack.is_none() {
            return Ok(());
        }
        let bytes = batch.approx_size().clamp(1, QUEUE_BYTES) as u32;
        let Ok(permit) = self.room.clone().acquire_many_owned(bytes).await else {
            return refuse(ack);
        };
        if let Err(mpsc::error::SendError((_, ack, _))) = tx.send((batch, ack, permit)) {
            return refuse(ack);
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
    mut rx: mpsc::UnboundedReceiver<Queued>,
    state: watch::Sender<CommitState>,
    room: Arc<Semaphore>,
) {
    let timeout = engine.settings.disk_full_timeout;
    let mut batches = Vec::new();
    let mut acks = Vec::new();
    let mut permits = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some((batch, ack, permit)) = next.take().or_else(|| rx.try_recv().ok()) {
            batches.push(batch);
            acks.extend(ack);
            permits.push(permit);
        }
        let mut stalled_since: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let outcome = loop {
            let started = Instant::now();
            let (back, result) = engine.store.commit_all(std::mem::take(&mut batches)).await;
            batches = back;
            match result {
                Ok(()) => {
                    crate::metrics::metrics()
                        .commit_duration
                        .observe(started.elapsed().as_secs_f64());
                    break Ok(());
                }
                Err(e) if e.is_storage_unavailable() => {
                    let since = *stalled_since.get_or_insert_with(|| {
                        tracing::warn!(error = %e, "the store refuses writes; retrying");
                        state.send_replace(CommitState::Stalled);
                        Instant::now()
                    });
                    if since.elapsed() >= timeout {
                        break Err((e.to_string(), true));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        // Once serving stops, the database lock is released
                        // and another process may take the database over: a
                        // stalled batch is never written after that, nor
                        // acknowledged, nor recorded as a failure. The run
                        // resumes from what is durable at the next start.
                        _ = engine.shutdown.cancelled() => std::future::pending::<()>().await,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e @ EngineError::Moved(_)) => {
                    tracing::warn!(error = %e, "the run moved to another server; stopping it here");
                    active.abandon.cancel();
                    break Err((e.to_string(), true));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the store refused a write");
                    let cause = "internal error while recording the run; see the server log";
                    break Err((cause.to_string(), false));
                }
            }
        };
        if let Err((cause, storage)) = outcome {
            // Nothing more is taken; whatever waits is refused with the cause.
            room.close();
            rx.close();
            while let Ok((_, ack, _)) = rx.try_recv() {
                acks.extend(ack);
            }
            for ack in acks.drain(..) {
                let _ = ack.send(Err(if storage {
                    EngineError::store_unavailable(cause.clone())
                } else {
                    EngineError::Internal(cause.clone())
                }));
            }
            state.send_replace(CommitState::Failed(cause));
            return;
        }
        if stalled_since.is_some() {
            tracing::info!("the store takes writes again");
            state.send_replace(CommitState::Healthy);
        }
        for batch in batches.drain(..) {
            for (_, e) in batch.events {
                let _ = active.events.send(e);
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(Ok(()));
        }
        permits.clear();
    }
}
