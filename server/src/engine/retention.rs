//! Deleting runs: DeleteRun, and retention's pruning of old finished runs
//! in the background; after either, the database file's free pages go
//! back to the file system in small steps (SQLite's incremental vacuum),
//! between other writes. What may be deleted is store::delete's rule.

use super::Engine;
use crate::error::EngineResult;
use crate::model::now_micros;
use crate::store::{DeleteSpec, Deleted, RunRef};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Free pages given back per step: a step holds the write lock for a few
/// milliseconds at most.
const VACUUM_PAGES: u32 = 256;
/// Old runs considered per transaction.
const PRUNE_BATCH: i64 = 200;
/// SQLite's page size here (the default).
const PAGE_BYTES: i64 = 4096;

impl Engine {
    /// Deletes a finished run, and with `cascade` what uses it.
    pub async fn delete_run(&self, run_ref: &str, cascade: bool) -> EngineResult<Deleted> {
        let run = self.store().find_run(RunRef(run_ref)).await?;
        let deleted = self
            .store()
            .delete_runs(DeleteSpec::Runs {
                ids: vec![run.id.clone()],
                cascade,
            })
            .await?;
        tracing::info!(
            run_id = %run.id,
            runs = deleted.runs.len(),
            experiments = deleted.experiments.len(),
            contents = deleted.contents,
            content_bytes = deleted.content_bytes,
            "deleted"
        );
        self.reclaim_space();
        Ok(deleted)
    }

    /// Prunes finished runs older than the retention, every `interval`,
    /// until the server shuts down.
    pub fn spawn_retention(&self, retention: Duration) {
        let engine = self.clone();
        // Often enough that nothing outlives the retention by much, never
        // more than every ten minutes nor less than every second.
        let interval = (retention / 8).clamp(Duration::from_secs(1), Duration::from_secs(600));
        tokio::spawn(async move {
            let stop = engine.shutting_down();
            loop {
                match engine.prune(retention).await {
                    Ok(deleted) if !deleted.runs.is_empty() => tracing::info!(
                        runs = deleted.runs.len(),
                        experiments = deleted.experiments.len(),
                        contents = deleted.contents,
                        content_bytes = deleted.content_bytes,
                        "retention deleted runs older than {} s",
                        retention.as_secs()
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention could not delete old runs; trying again later")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// One sweep: every finished run older than `retention` that nothing
    /// newer uses, oldest first.
    pub async fn prune(&self, retention: Duration) -> EngineResult<Deleted> {
        let before = now_micros() - retention.as_micros() as i64;
        let mut total = Deleted::default();
        let mut after = None;
        loop {
            let page = self
                .store()
                .finished_before(before, after, PRUNE_BATCH)
                .await?;
            let Some((_, at, pk)) = page.last() else {
                break;
            };
            after = Some((*at, *pk));
            let ids = page.iter().map(|(id, ..)| id.clone()).collect();
            let deleted = self
                .store()
                .delete_runs(DeleteSpec::Expired { ids, before })
                .await?;
            total.runs.extend(deleted.runs);
            total.experiments.extend(deleted.experiments);
            total.contents += deleted.contents;
            total.content_bytes += deleted.content_bytes;
            if (page.len() as i64) < PRUNE_BATCH {
                break;
            }
        }
        if !total.runs.is_empty() {
            self.reclaim_space();
        }
        Ok(total)
    }

    /// Gives the database's free pages back to the file system in the
    /// background, a step at a time; one such task at once.
    fn reclaim_space(&self) {
        static RUNNING: AtomicBool = AtomicBool::new(false);
        if RUNNING.swap(true, Ordering::AcqRel) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut pages = 0;
            let result = loop {
                match engine.store().vacuum_step(VACUUM_PAGES).await {
                    Ok(0) => break Ok(pages),
                    Ok(given) => pages += given,
                    Err(e) => break Err(e),
                }
                tokio::task::yield_now().await;
            };
            RUNNING.store(false, Ordering::Release);
            match result {
                Ok(pages) if pages > 0 => tracing::info!(
                    bytes = pages * PAGE_BYTES,
                    "gave free database pages back to the file system"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not give free database pages back"),
            }
        });
    }
}
