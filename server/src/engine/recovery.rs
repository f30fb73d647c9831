//! Runs a previous process left unfinished: found at start-up and resumed
//! from their durable records, as if the process had never stopped.

use super::run::RunStart;
use super::{Engine, WorkflowSource};
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use crate::store::RunRef;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

impl Engine {
    /// Resumes runs a previous process left unfinished. Completed nodes
    /// keep their results; nodes that were running start a new attempt.
    pub async fn recover(&self) -> EngineResult<usize> {
        let runs = self.0.store.unfinished_runs().await?;
        let mut resumed = 0;
        for run in runs {
            if self.0.active_run(&run.id).is_some() {
                continue;
            }
            match self.resume(run.clone()).await {
                Ok(()) => resumed += 1,
                Err(e) => tracing::error!(run = %run.id, error = %e, "cannot resume run"),
            }
        }
        Ok(resumed)
    }

    /// Resumes one run another process left unfinished, as `recover` does
    /// for all of them: a waiting run waits here for its answers, an
    /// interrupted one carries on. With `cancel`, the run is cancelled
    /// instead, without starting a node, and this returns once its final
    /// state is written. A finished run, or one this engine drives
    /// already, is left as it is. Returns the run.
    ///
    /// Only for a process that holds the database's lock exclusively
    /// ([`crate::lock`]): two engines driving one run would both execute it.
    pub async fn resume_run(&self, run_ref: &str, cancel: bool) -> EngineResult<Run> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        let id = run.id.clone();
        if run.status.is_finished() || self.drives(&id) {
            return self.get_run(&id).await;
        }
        let token = CancellationToken::new();
        if cancel {
            token.cancel();
        }
        self.resume_with(run, token, None).await?;
        if cancel {
            let active = self.0.active_run(&id);
            if let Some(active) = active {
                let _ = active.done.subscribe().wait_for(|d| *d).await;
            }
        }
        self.get_run(&id).await
    }

    async fn resume(&self, run: Run) -> EngineResult<()> {
        self.resume_with(run, CancellationToken::new(), None).await
    }

    /// Resumes a run this server claimed on a shared database, in the
    /// slot taken for it as it was claimed.
    pub(super) async fn resume_claimed(
        &self,
        run: Run,
        permit: Option<OwnedSemaphorePermit>,
    ) -> EngineResult<()> {
        self.resume_with(run, CancellationToken::new(), permit)
            .await
    }

    /// `permit`: the run's slot, when taken already; without one a resumed
    /// run waits for a slot instead of being refused.
    async fn resume_with(
        &self,
        mut run: Run,
        cancel: CancellationToken,
        permit: Option<OwnedSemaphorePermit>,
    ) -> EngineResult<()> {
        let text = String::from_utf8(self.0.store.content(&run.workflow_sha256).await?)
            .map_err(|_| EngineError::Internal("workflow snapshot is not UTF-8".into()))?;
        let src = WorkflowSource {
            text: &text,
            files: &run.files,
            variables: &run.variables,
        };
        let workflow = self.load_valid(&src).await?;
        let mut nodes = self.nodes_of_run(&run).await?;
        if nodes.len() != workflow.nodes.len() {
            return Err(EngineError::Internal(format!(
                "run '{}' has {} node records for {} nodes",
                run.id,
                nodes.len(),
                workflow.nodes.len()
            )));
        }
        // The run row's usage is written with its status, not with every
        // node: recount it from the nodes' own records.
        run.usage = Usage::default();
        for rec in &mut nodes {
            if rec.status == NodeStatus::Running {
                rec.status = NodeStatus::Pending;
            }
            if rec.status == NodeStatus::Completed {
                run.usage.input_tokens += rec.usage.input_tokens;
                run.usage.output_tokens += rec.usage.output_tokens;
                run.usage.cost_usd += rec.usage.cost_usd;
            }
        }
        let agents = nodes.iter().map(|n| n.agent.clone()).collect();
        let last_seq = self.0.store.last_event_sequence(run.pk).await?;
        tracing::info!(run = %run.id, "resuming run");
        let start = RunStart {
            run,
            workflow,
            nodes,
            agents,
            last_seq,
            permit,
        };
        self.spawn_driver(start, cancel)
    }
}
