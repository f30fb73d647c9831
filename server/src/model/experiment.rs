//! Experiments: one change applied to many recorded runs by replaying
//! each, and what is kept of them.

use super::{AgentSwap, Micros, OutputOverride, RunStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

numbered_enum!(ExperimentStatus {
    Running = 1 => "running",
    Completed = 2 => "completed",
    Failed = 3 => "failed",
    Cancelled = 4 => "cancelled",
});

impl ExperimentStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Running)
    }
}

numbered_enum!(ItemStatus {
    Pending = 1 => "pending",
    Running = 2 => "running",
    Completed = 3 => "completed",
    Failed = 4 => "failed",
    Cancelled = 5 => "cancelled",
    Skipped = 6 => "skipped",
});

impl ItemStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// The item's status once its replay ended with `run`.
    pub fn of_run(run: RunStatus) -> Self {
        match run {
            RunStatus::Completed => Self::Completed,
            RunStatus::Failed => Self::Failed,
            RunStatus::Cancelled => Self::Cancelled,
            RunStatus::Pending | RunStatus::Running | RunStatus::Waiting => Self::Running,
        }
    }
}

/// Which runs an experiment replays: the ids given, or those matching
/// the filter (most recent first, at most `limit`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSelection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<String>,
    pub limit: u32,
}

/// What each replay of an experiment applies: a replay's options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<AgentSwap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OutputOverride>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub allow_drift: bool,
}

/// What an experiment was asked to do; stored as it was given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    pub selection: RunSelection,
    pub change: ExperimentChange,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_node: Option<String>,
}

/// One source run of an experiment and its replay.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentItem {
    pub experiment_id: String,
    /// The item's place in the experiment, from 0.
    pub position: i32,
    pub source_run_id: String,
    pub replay_run_id: Option<String>,
    pub status: ItemStatus,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub status: ExperimentStatus,
    pub spec: ExperimentSpec,
    pub created_at: Micros,
    pub finished_at: Option<Micros>,
    pub items: Vec<ExperimentItem>,
}

impl Experiment {
    /// Items per status, in `ItemStatus` order.
    pub fn count(&self, status: ItemStatus) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }
}
