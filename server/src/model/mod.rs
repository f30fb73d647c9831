//! retake's vocabulary, shared by the engine, the store and the API:
//! statuses, runs, node executions, artifacts and events, independent of
//! protobuf. Numeric values match the retake.v1 enums.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

macro_rules! numbered_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $num:expr => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant = $num),+ }

        impl $name {
            pub fn from_i64(n: i64) -> Option<Self> {
                match n { $($num => Some(Self::$variant),)+ _ => None }
            }
            pub fn as_i64(self) -> i64 { self as i64 }
            /// Lower-case name, as the CLI prints it.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

numbered_enum!(RunStatus {
    Pending = 1 => "pending",
    Running = 2 => "running",
    Waiting = 3 => "waiting",
    Completed = 4 => "completed",
    Failed = 5 => "failed",
    Cancelled = 6 => "cancelled",
});

/// A run not yet started.
impl Default for RunStatus {
    fn default() -> Self {
        Self::Pending
    }
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

numbered_enum!(NodeStatus {
    Pending = 1 => "pending",
    Running = 2 => "running",
    Waiting = 3 => "waiting",
    Completed = 4 => "completed",
    Failed = 5 => "failed",
    Skipped = 6 => "skipped",
    Reused = 7 => "reused",
    Cancelled = 8 => "cancelled",
    Queued = 9 => "queued",
});

/// A node not yet started.
impl Default for NodeStatus {
    fn default() -> Self {
        Self::Pending
    }
}

impl NodeStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Skipped | Self::Reused | Self::Cancelled
        )
    }
    /// Whether the node produced outputs its consumers can use.
    pub fn has_outputs(self) -> bool {
        matches!(self, Self::Completed | Self::Reused)
    }
}

numbered_enum!(FailureOrigin {
    Agent = 1 => "agent",
    Timeout = 2 => "timeout",
    Cancelled = 3 => "cancelled",
    Drift = 4 => "drift",
    Internal = 5 => "internal",
    Interrupted = 6 => "interrupted",
});

numbered_enum!(ArtifactOrigin {
    Executed = 1 => "executed",
    Reused = 2 => "reused",
    Override = 3 => "override",
    Human = 4 => "human",
});

numbered_enum!(EventKind {
    RunStarted = 1 => "run_started",
    RunStatusChanged = 2 => "run_status_changed",
    RunFinished = 3 => "run_finished",
    NodeStarted = 4 => "node_started",
    NodeOutputDelta = 5 => "node_output_delta",
    NodeCompleted = 6 => "node_completed",
    NodeFailed = 7 => "node_failed",
    NodeSkipped = 8 => "node_skipped",
    NodeReused = 9 => "node_reused",
    WaitStarted = 10 => "wait_started",
    WaitResolved = 11 => "wait_resolved",
    NodeRetrying = 12 => "node_retrying",
    NodeCancelled = 13 => "node_cancelled",
    NodeQueued = 14 => "node_queued",
    NodeProgress = 15 => "node_progress",
});

/// Unix time in microseconds, the store's time unit.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7())
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeCounts {
    pub total: i32,
    pub completed: i32,
    pub failed: i32,
    pub skipped: i32,
    pub reused: i32,
    pub running: i32,
    pub waiting: i32,
    pub pending: i32,
    pub cancelled: i32,
    pub queued: i32,
}

impl NodeCounts {
    /// Counts of a run of `total` nodes whose own records have these
    /// statuses (with how many of each); nodes without a record in the run
    /// are reused from its source.
    pub fn of_records(total: i32, records: impl IntoIterator<Item = (NodeStatus, i32)>) -> Self {
        let mut counts = Self {
            total,
            ..Default::default()
        };
        let mut recorded = 0;
        for (status, n) in records {
            counts.add(status, n);
            recorded += n;
        }
        counts.add(NodeStatus::Reused, (total - recorded).max(0));
        counts
    }

    pub fn add(&mut self, status: NodeStatus, n: i32) {
        match status {
            NodeStatus::Pending => self.pending += n,
            NodeStatus::Queued => self.queued += n,
            NodeStatus::Running => self.running += n,
            NodeStatus::Waiting => self.waiting += n,
            // completed counts completed plus reused nodes.
            NodeStatus::Completed => self.completed += n,
            NodeStatus::Reused => {
                self.reused += n;
                self.completed += n;
            }
            NodeStatus::Failed => self.failed += n,
            NodeStatus::Skipped => self.skipped += n,
            NodeStatus::Cancelled => self.cancelled += n,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunFailure {
    pub node_id: String,
    pub message: String,
    pub origin: FailureOrigin,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentSwap {
    pub node_id: String,
    pub agent: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OutputOverride {
    pub selector: String,
    #[serde(default)]
    pub output: String,
    pub value: String,
    /// Where the value came from, as the client says (`@PATH`); empty for
    /// a value given as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// What a replay changed; stored as JSON on the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplayInfo {
    pub forked_from: String,
    pub forked_at_step: String,
    pub roots: Vec<String>,
    pub swaps: Vec<AgentSwap>,
    pub overrides: Vec<OutputOverride>,
    pub changed_variables: Vec<String>,
    pub allow_drift: bool,
    pub replay_set: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Run {
    pub pk: i64,
    pub id: String,
    pub workflow_name: String,
    pub workflow_description: String,
    pub workflow_sha256: String,
    pub files: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
    pub status: RunStatus,
    pub created_at: Micros,
    pub started_at: Option<Micros>,
    pub finished_at: Option<Micros>,
    pub counts: NodeCounts,
    pub usage: Usage,
    pub failure: Option<RunFailure>,
    pub replay: Option<ReplayInfo>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: i32,
    pub started_at: Micros,
    #[serde(default)]
    pub finished_at: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_origin: Option<FailureOrigin>,
    /// The worker that ran it (`worker://` nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeExecution {
    pub pk: i64,
    pub id: String,
    pub run_id: String,
    pub node_id: String,
    pub position: i32,
    pub status: NodeStatus,
    pub agent: String,
    pub config_json: String,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub inputs_json: Option<String>,
    pub input_artifacts: Vec<String>,
    pub output_artifacts: Vec<String>,
    pub error: Option<String>,
    pub error_origin: Option<FailureOrigin>,
    pub started_at: Option<Micros>,
    pub finished_at: Option<Micros>,
    pub latency_ms: Option<i64>,
    pub usage: Usage,
    pub attempt_count: i32,
    pub attempts: Vec<AttemptRecord>,
    pub blocked_by: Vec<String>,
    /// Set on REUSED records: where the result was first produced.
    pub reused_from_run: Option<String>,
    pub reused_from_node_execution: Option<String>,
    pub depends_on: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub node_id: String,
    pub node_execution_id: Option<String>,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub origin: ArtifactOrigin,
    pub derived_from: Vec<String>,
    pub created_at: Micros,
}

/// The optional fields of an event, stored as JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_status: Option<NodeStatus>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delta: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifact_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// The nodes a NODE_REUSED event announces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
    /// NODE_STARTED of a `worker://` node: the worker that took the task.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    /// NODE_PROGRESS (never stored): how far, 0 to 1, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl EventDetail {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    pub run_id: String,
    pub sequence: i64,
    pub kind: EventKind,
    pub time: Micros,
    pub node_id: Option<String>,
    pub detail: EventDetail,
}

mod experiment;
pub use experiment::*;
