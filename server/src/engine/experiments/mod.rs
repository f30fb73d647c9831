//! Experiments: one change (a replay's options) applied to many recorded
//! runs. Starting one selects the source runs and records the experiment
//! and its items in one transaction; `runner` then replays them, a few at
//! a time, and `compare` sums up what the replays changed.
//!
//! Durability: an item's replay is linked to it in the transaction that
//! stores the replay run (`ReplayRequest::item`), so after a restart an
//! item either has its replay (which run recovery resumes, and the runner
//! waits for) or has none and is started then. No replay starts twice.

mod compare;
mod runner;

pub use compare::{Comparison, NodeAggregate, PairComparison, ScoreSummary, Totals};

use super::Engine;
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use crate::store::{RunFilter, RunRef, WriteBatch};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Sources taken from a filter when no limit is given, and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Replays at once when a request leaves it to the server.
pub const DEFAULT_CONCURRENCY: u32 = 4;
const MAX_CONCURRENCY: u32 = 256;

/// Experiments this process is running: how to stop each, and a counter
/// bumped whenever one of its items changes, for watchers.
#[derive(Default)]
pub struct RunningExperiments(Mutex<HashMap<String, Running>>);

impl RunningExperiments {
    /// Ids of the experiments running here.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("experiments lock")
            .keys()
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct Running {
    cancel: CancellationToken,
    changed: watch::Sender<u64>,
}

impl RunningExperiments {
    fn get(&self, id: &str) -> Option<Running> {
        self.0.lock().expect("experiments lock").get(id).cloned()
    }
}

/// What a client asks for.
#[derive(Clone, Debug, Default)]
pub struct ExperimentRequest {
    pub name: String,
    pub spec: ExperimentSpec,
}

impl Engine {
    pub async fn start_experiment(&self, req: ExperimentRequest) -> EngineResult<Experiment> {
        let mut spec = req.spec;
        if spec.concurrency == 0 {
            spec.concurrency = self.settings().experiment_concurrency;
        }
        if spec.concurrency > MAX_CONCURRENCY {
            return Err(EngineError::invalid_argument(format!(
                "concurrency {} is over the limit of {MAX_CONCURRENCY}",
                spec.concurrency
            )));
        }
        let sources = self.select_sources(&mut spec.selection).await?;
        let id = new_id("exp");
        let items: Vec<ExperimentItem> = sources
            .into_iter()
            .enumerate()
            .map(|(position, source_run_id)| ExperimentItem {
                experiment_id: id.clone(),
                position: position as i32,
                source_run_id,
                replay_run_id: None,
                status: ItemStatus::Pending,
                reason: None,
            })
            .collect();
        let experiment = Experiment {
            id,
            name: req.name.trim().to_string(),
            status: ExperimentStatus::Running,
            spec,
            created_at: now_micros(),
            finished_at: None,
            items,
        };
        self.store()
            .commit(WriteBatch {
                experiments: vec![experiment.clone()],
                experiment_items: experiment.items.clone(),
                ..WriteBatch::default()
            })
            .await?;
        self.spawn_experiment(&experiment.id, false);
        Ok(experiment)
    }

    /// The source runs: the ids given, each resolved (a prefix or
    /// `latest` names one run), or the runs matching the filter.
    async fn select_sources(&self, selection: &mut RunSelection) -> EngineResult<Vec<String>> {
        if !selection.run_ids.is_empty() {
            let filtered = selection.workflow_name.is_some()
                || selection.status.is_some()
                || selection.created_after.is_some()
                || selection.created_before.is_some()
                || selection.forked_from.is_some();
            if filtered {
                return Err(EngineError::invalid_argument(
                    "give run ids or a filter (workflow, status, time range, forked from), not both",
                ));
            }
            let mut ids = Vec::with_capacity(selection.run_ids.len());
            for given in &selection.run_ids {
                let id = self.store().find_run(RunRef(given)).await?.id;
                if ids.contains(&id) {
                    return Err(EngineError::invalid_argument(format!(
                        "run '{id}' is selected twice"
                    )));
                }
                ids.push(id);
            }
            selection.run_ids = ids.clone();
            return Ok(ids);
        }
        if selection.limit == 0 {
            selection.limit = DEFAULT_LIMIT;
        }
        if selection.limit > MAX_LIMIT {
            return Err(EngineError::invalid_argument(format!(
                "limit {} is over the maximum of {MAX_LIMIT} runs",
                selection.limit
            )));
        }
        let filter = RunFilter {
            status: selection.status,
            workflow_name: selection.workflow_name.clone(),
            forked_from: selection.forked_from.clone(),
            created_after: selection.created_after,
            created_before: selection.created_before,
            oldest_first: false,
        };
        let runs = self
            .store()
            .list_runs(&filter, selection.limit as i64, None)
            .await?;
        if runs.is_empty() {
            return Err(EngineError::invalid_argument(
                "no run matches the selection: nothing to replay",
            ));
        }
        Ok(runs.into_iter().map(|r| r.id).collect())
    }

    pub async fn get_experiment(&self, id: &str) -> EngineResult<Experiment> {
        self.store().experiment(id).await
    }

    /// A receiver that changes whenever an item of the experiment does;
    /// None when this process is not running it.
    pub fn experiment_changes(&self, id: &str) -> Option<watch::Receiver<u64>> {
        self.0.experiments.get(id).map(|r| r.changed.subscribe())
    }

    /// Whether this process runs the experiment.
    pub fn runs_experiment(&self, id: &str) -> bool {
        self.0.experiments.get(id).is_some()
    }

    /// Stops an experiment: no replay starts any more, running ones are
    /// cancelled, and the experiment ends CANCELLED. Returns it once its
    /// final state is written.
    pub async fn cancel_experiment(&self, id: &str) -> EngineResult<Experiment> {
        let experiment = self.store().experiment(id).await?;
        if experiment.status.is_finished() {
            return Err(EngineError::failed_precondition(format!(
                "Experiment '{}' has already finished ({})",
                experiment.id, experiment.status
            )));
        }
        let running = self.0.experiments.get(&experiment.id);
        if running.is_none() && self.in_cluster() {
            self.cancel_experiment_elsewhere(&experiment.id).await?;
            return self.store().experiment(&experiment.id).await;
        }
        let Some(running) = running else {
            return Err(EngineError::failed_precondition(format!(
                "Experiment '{}' is not running in this server; it resumes (and can be cancelled) when the server that owns its database restarts",
                experiment.id
            )));
        };
        running.cancel.cancel();
        self.experiment_ended(&experiment.id, &running).await
    }

    /// Takes over an experiment a previous process left running: its
    /// items' unfinished replays are resumed and its runner started here.
    /// With `cancel` nothing new runs: the replays are cancelled without
    /// starting a node, pending items are marked cancelled, and the
    /// experiment is returned once it has ended CANCELLED. The caller owns
    /// the database's runs (holds its lock exclusively), as for
    /// `resume_run`.
    pub async fn resume_experiment(&self, id: &str, cancel: bool) -> EngineResult<Experiment> {
        let experiment = self.store().experiment(id).await?;
        if experiment.status.is_finished() {
            return Ok(experiment);
        }
        if self.runs_experiment(&experiment.id) {
            if cancel {
                return self.cancel_experiment(&experiment.id).await;
            }
            return Ok(experiment);
        }
        // The replays first: the runner waits for each, and a replay no
        // process drives would never end.
        let replays = experiment
            .items
            .iter()
            .filter(|i| !i.status.is_finished())
            .filter_map(|i| i.replay_run_id.as_deref());
        for replay in replays {
            self.resume_run(replay, cancel).await?;
        }
        let running = self.spawn_experiment(&experiment.id, cancel);
        if !cancel {
            return self.store().experiment(&experiment.id).await;
        }
        self.experiment_ended(&experiment.id, &running).await
    }

    /// The experiment once its runner has written its final state and
    /// stopped.
    async fn experiment_ended(&self, id: &str, running: &Running) -> EngineResult<Experiment> {
        let mut changed = running.changed.subscribe();
        // The runner removes the experiment once its final state is written.
        while self.runs_experiment(id) {
            if changed.changed().await.is_err() {
                break;
            }
        }
        self.store().experiment(id).await
    }

    /// Resumes the experiments a previous process left running.
    pub async fn recover_experiments(&self) -> EngineResult<usize> {
        let ids = self.store().unfinished_experiments().await?;
        for id in &ids {
            if !self.runs_experiment(id) {
                self.spawn_experiment(id, false);
            }
        }
        Ok(ids.len())
    }

    /// Starts the runner of an experiment this server claimed.
    pub(crate) fn run_claimed_experiment(&self, id: &str) {
        if !self.runs_experiment(id) {
            self.spawn_experiment(id, false);
        }
    }

    /// Starts the experiment's runner; `cancelled` has it stop at once
    /// (cancelling what is left) instead of starting replays.
    fn spawn_experiment(&self, id: &str, cancelled: bool) -> Running {
        let running = Running {
            cancel: CancellationToken::new(),
            changed: watch::channel(0).0,
        };
        if cancelled {
            running.cancel.cancel();
        }
        self.0
            .experiments
            .0
            .lock()
            .expect("experiments lock")
            .insert(id.to_string(), running.clone());
        let (engine, id, handle) = (self.clone(), id.to_string(), running.clone());
        tokio::spawn(async move {
            let stopping = engine.shutting_down();
            if let Err(e) = runner::run(&engine, &id, &running).await
                && !stopping.is_cancelled()
            {
                tracing::error!(experiment = %id, error = %e, "experiment stopped");
            }
            engine
                .0
                .experiments
                .0
                .lock()
                .expect("experiments lock")
                .remove(&id);
            running.changed.send_modify(|n| *n += 1);
        });
        handle
    }
}
