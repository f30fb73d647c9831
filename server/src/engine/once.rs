//! Requests that name themselves (request_id): the run the first one
//! stored is the answer to every retry, on any server, after restarts.

use super::Engine;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::Run;
use crate::store::RequestKey;

impl Engine {
    /// The run an earlier request with `key`'s id stored; an error when
    /// that request asked something else.
    async fn earlier_run(&self, key: &RequestKey) -> EngineResult<Option<Run>> {
        match self.store().run_by_request(&key.id).await? {
            Some((run, sha256)) if sha256 == key.sha256 => Ok(Some(run)),
            Some((run, _)) => Err(EngineError::invalid_argument(format!(
                "request_id '{}' was used by a different request (it started run {}); a new request needs a new id",
                crate::error::echo(&key.id),
                run.id
            ))
            .reason(Reason::RequestIdReused)
            .meta("runId", &run.id)),
            None => Ok(None),
        }
    }

    /// What `start` stores, or, for a retry of a request that stored its
    /// run already (before, or meanwhile on another server), that run.
    pub(crate) async fn once(
        &self,
        key: Option<&RequestKey>,
        start: impl Future<Output = EngineResult<Run>>,
    ) -> EngineResult<Run> {
        let Some(key) = key else { return start.await };
        if let Some(run) = self.earlier_run(key).await? {
            return Ok(run);
        }
        match start.await {
            // The same request, stored first by a retry running at once.
            Err(EngineError::AlreadyExists(_)) => self.earlier_run(key).await?.ok_or_else(|| {
                EngineError::Internal(format!("the run of request_id '{}' vanished", key.id))
            }),
            other => other,
        }
    }
}
