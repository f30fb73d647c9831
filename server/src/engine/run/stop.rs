//! Stopping a run that cannot go on (its writes keep failing past the
//! disk-full timeout, or a bug): it fails on top of whatever of it is
//! durable, so nothing it told a client is contradicted.

use super::driver::RunDriver;
use super::journal::{Change, RunChange};
use crate::error::EngineError;
use crate::model::*;
use crate::store::WriteBatch;
use std::time::Duration;

impl RunDriver {
    /// Fails the run with `cause`: nodes left unfinished on disk are
    /// cancelled. Retried while the store refuses writes, so the cause is
    /// recorded as soon as a write succeeds.
    pub(super) async fn record_stop(&mut self, cause: String) {
        let _ = self.committer.close().await;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.stop_batch(&cause).await {
                Ok(batch) => match self.engine.store.commit(batch).await {
                    Ok(batch) => {
                        for (_, e) in batch.events {
                            let _ = self.active.events.send(e);
                        }
                        return;
                    }
                    Err(e) if e.is_storage_unavailable() => {}
                    Err(e) => {
                        tracing::error!(run = %self.run.id, error = %e, "cannot record that the run stopped; it resumes at the next start");
                        return;
                    }
                },
                Err(e) => {
                    tracing::error!(run = %self.run.id, error = %e, "cannot read the run's durable state; it resumes at the next start");
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn stop_batch(&mut self, cause: &str) -> Result<WriteBatch, EngineError> {
        let store = &self.engine.store;
        self.journal
            .restart_at(store.last_event_sequence(self.run.pk).await?);
        let mut durable = store.nodes_of_run(self.run.pk).await?;
        for rec in durable.iter_mut().filter(|n| !n.status.is_terminal()) {
            let change = Change::Cancelled {
                error: format!("not finished: {cause}"),
                origin: FailureOrigin::Internal,
                attempt_origin: FailureOrigin::Interrupted,
            };
            self.journal.record(rec, change);
        }
        self.run.counts = NodeCounts::of_records(
            self.nodes.len() as i32,
            durable.iter().map(|rec| (rec.status, 1)),
        );
        self.run.status = RunStatus::Failed;
        self.run.failure = Some(RunFailure {
            node_id: String::new(),
            message: cause.to_string(),
            origin: FailureOrigin::Internal,
        });
        self.journal.record_run(&mut self.run, RunChange::Finished);
        Ok(self.journal.take())
    }
}
