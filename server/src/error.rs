//! The one error type of the engine and store. Each variant is a kind of
//! outcome a caller reacts to differently; the message is what a user reads.
//! `api::status` maps it to gRPC status codes in one place; the store maps
//! its database's errors to it (store::errors), so nothing here knows the
//! database.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

#[derive(Clone, Debug, Error)]
pub enum EngineError {
    /// The request itself is wrong: bad workflow, bad swap, unknown step.
    #[error("{0}")]
    InvalidArgument(Problem),
    /// An id that does not exist.
    #[error("{0}")]
    NotFound(Problem),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(Problem),
    /// A position (event sequence) outside what is kept.
    #[error("{0}")]
    OutOfRange(Problem),
    /// Over a configured limit.
    #[error("{0}")]
    ResourceExhausted(Problem),
    /// The store cannot take writes right now (disk full, I/O error);
    /// nothing of the request was stored and a retry may succeed.
    #[error("{0}")]
    Unavailable(Problem),
    /// What the request would create exists already: a request_id used
    /// before. The caller reads what the first request created.
    #[error("{0}")]
    AlreadyExists(Problem),
    /// The run is executed by another server now (this one's lease on it
    /// ran out and was taken over): nothing of the write was stored, and
    /// this server must stop executing it.
    #[error("{0}")]
    Moved(Problem),
    /// The store holds a value retake cannot have written (a damaged file,
    /// an edit by hand). It is reported where it is read, never replaced
    /// by a default, so a corrupt row cannot pass for a plausible one.
    #[error("the store is corrupt: {table}.{column} of the row with {row}: {problem}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        /// The row's key, e.g. `pk 12`.
        row: String,
        problem: String,
    },
    /// Something inside retake broke. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

/// Most characters a metadata value keeps.
const MAX_META_CHARS: usize = 512;

/// What a message may quote of something a caller sent (an id, a step):
/// enough to recognise it, never so much that the error itself is large.
pub fn echo(given: &str) -> std::borrow::Cow<'_, str> {
    const MAX_CHARS: usize = 80;
    match given.char_indices().nth(MAX_CHARS) {
        None => given.into(),
        Some((end, _)) => format!("{}… ({} bytes)", &given[..end], given.len()).into(),
    }
}

impl EngineError {
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::InvalidArgument(Problem::new(message))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(Problem::new(message))
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition(Problem::new(message))
    }
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::OutOfRange(Problem::new(message))
    }
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::ResourceExhausted(Problem::new(message))
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(Problem::new(message))
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::AlreadyExists(Problem::new(message))
    }
    pub fn moved(message: impl Into<String>) -> Self {
        Self::Moved(Problem::new(message))
    }
    /// The database refused a write it may take later (disk full, I/O,
    /// connection); nothing was stored.
    pub fn store_unavailable(message: impl Into<String>) -> Self {
        Self::unavailable(message).reason(Reason::StoreUnavailable)
    }

    pub fn run_not_found(run: &str) -> Self {
        Self::not_found(format!("Run '{}' not found", echo(run)))
            .reason(Reason::RunNotFound)
            .meta("runId", run)
    }

    /// The problem a caller is told about; None for the kinds whose
    /// details stay in the server's log.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::InvalidArgument(p)
            | Self::NotFound(p)
            | Self::FailedPrecondition(p)
            | Self::OutOfRange(p)
            | Self::ResourceExhausted(p)
            | Self::Unavailable(p)
            | Self::AlreadyExists(p)
            | Self::Moved(p) => Some(p),
            Self::Corrupt { .. } | Self::Internal(_) => None,
        }
    }

    fn problem_mut(&mut self) -> Option<&mut Problem> {
        match self {
            Self::InvalidArgument(p)
            | Self::NotFound(p)
            | Self::FailedPrecondition(p)
            | Self::OutOfRange(p)
            | Self::ResourceExhausted(p)
            | Self::Unavailable(p)
            | Self::AlreadyExists(p)
            | Self::Moved(p) => Some(p),
            Self::Corrupt { .. } | Self::Internal(_) => None,
        }
    }

    fn detail(&mut self) -> Option<&mut Detail> {
        self.problem_mut().map(|p| &mut *p.detail)
    }

    /// Names why, for callers that react to the kind of failure.
    pub fn reason(mut self, reason: Reason) -> Self {
        if let Some(d) = self.detail() {
            d.reason = Some(reason);
        }
        self
    }

    /// A fact about the failure (`runId`, `nodeIds`), keyed in lowerCamelCase.
    pub fn meta(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if let Some(d) = self.detail() {
            // Bounded: an id a caller sent may be anything, and a list of
            // ids may be long; the details must fit a header block.
            let value = value.into();
            let bounded = match value.char_indices().nth(MAX_META_CHARS) {
                None => value,
                Some((end, _)) => format!("{}…", &value[..end]),
            };
            d.metadata.push((key.to_string(), bounded));
        }
        self
    }

    /// One field of the request (or the workflow) that is wrong.
    pub fn violation(mut self, field: impl Into<String>, description: impl Into<String>) -> Self {
        if let Some(d) = self.detail() {
            d.violations.push(Violation {
                field: field.into(),
                description: description.into(),
            });
        }
        self
    }

    /// One condition the request depends on that does not hold.
    pub fn precondition(
        mut self,
        kind: &'static str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        if let Some(d) = self.detail() {
            d.preconditions.push(Precondition {
                kind: kind.to_string(),
                subject: subject.into(),
                description: description.into(),
            });
        }
        self
    }

    /// Retrying after `delay` can succeed.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        if let Some(d) = self.detail() {
            d.retry_after_ms = Some(delay.as_millis() as u64);
        }
        self
    }

    /// The reason given, or the kind's own when none was.
    pub fn reason_or_default(&self) -> Reason {
        if let Some(reason) = self.problem().and_then(|p| p.detail.reason) {
            return reason;
        }
        match self {
            Self::InvalidArgument(_) => Reason::InvalidRequest,
            Self::NotFound(_) => Reason::NotFound,
            Self::FailedPrecondition(_) => Reason::StateConflict,
            Self::OutOfRange(_) => Reason::OutOfRange,
            Self::ResourceExhausted(_) => Reason::LimitExceeded,
            Self::Unavailable(_) => Reason::Unavailable,
            Self::AlreadyExists(_) => Reason::AlreadyExists,
            Self::Moved(_) => Reason::RunMoved,
            Self::Corrupt { .. } => Reason::StoreCorrupt,
            Self::Internal(_) => Reason::Internal,
        }
    }
}

/// What a caller is told about an error: the message a person reads and
/// the details a program reacts to (`api::status` sends both as a
/// google.rpc.Status). Dereferences to the message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub message: String,
    pub detail: Box<Detail>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            detail: Box::default(),
        }
    }
}

impl std::ops::Deref for Problem {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The machine-readable part of a problem.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    pub reason: Option<Reason>,
    pub metadata: Vec<(String, String)>,
    pub violations: Vec<Violation>,
    pub preconditions: Vec<Precondition>,
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Precondition {
    /// What kind of condition, e.g. `DRIFT` or `RUN_STATUS`.
    pub kind: String,
    pub subject: String,
    pub description: String,
}

/// Why a request failed, as callers match on it: the names are the
/// contract's `ErrorReason` values (a test keeps the two lists equal) and
/// never change once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    InvalidRequest,
    WorkflowInvalid,
    ReplayInvalid,
    RequestIdReused,
    PageTokenInvalid,
    NotFound,
    RunNotFound,
    NodeNotFound,
    ArtifactNotFound,
    ExperimentNotFound,
    StateConflict,
    RunNotFinished,
    RunFinished,
    RunNotExecuting,
    WaitNotPending,
    ReplayDrift,
    OutOfRange,
    EventsPruned,
    LimitExceeded,
    ServerBusy,
    AlreadyExists,
    Unavailable,
    StoreUnavailable,
    RunMoved,
    StoreCorrupt,
    Internal,
    Unauthenticated,
    RunInUse,
}

impl Reason {
    pub const ALL: [Reason; 28] = [
        Self::InvalidRequest,
        Self::WorkflowInvalid,
        Self::ReplayInvalid,
        Self::RequestIdReused,
        Self::PageTokenInvalid,
        Self::NotFound,
        Self::RunNotFound,
        Self::NodeNotFound,
        Self::ArtifactNotFound,
        Self::ExperimentNotFound,
        Self::StateConflict,
        Self::RunNotFinished,
        Self::RunFinished,
        Self::RunNotExecuting,
        Self::WaitNotPending,
        Self::ReplayDrift,
        Self::OutOfRange,
        Self::EventsPruned,
        Self::LimitExceeded,
        Self::ServerBusy,
        Self::AlreadyExists,
        Self::Unavailable,
        Self::StoreUnavailable,
        Self::RunMoved,
        Self::StoreCorrupt,
        Self::Internal,
        Self::Unauthenticated,
        Self::RunInUse,
    ];

    /// The name callers see in `google.rpc.ErrorInfo.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::WorkflowInvalid => "WORKFLOW_INVALID",
            Self::ReplayInvalid => "REPLAY_INVALID",
            Self::RequestIdReused => "REQUEST_ID_REUSED",
            Self::PageTokenInvalid => "PAGE_TOKEN_INVALID",
            Self::NotFound => "NOT_FOUND",
            Self::RunNotFound => "RUN_NOT_FOUND",
            Self::NodeNotFound => "NODE_NOT_FOUND",
            Self::ArtifactNotFound => "ARTIFACT_NOT_FOUND",
            Self::ExperimentNotFound => "EXPERIMENT_NOT_FOUND",
            Self::StateConflict => "STATE_CONFLICT",
            Self::RunNotFinished => "RUN_NOT_FINISHED",
            Self::RunFinished => "RUN_FINISHED",
            Self::RunNotExecuting => "RUN_NOT_EXECUTING",
            Self::WaitNotPending => "WAIT_NOT_PENDING",
            Self::ReplayDrift => "REPLAY_DRIFT",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::EventsPruned => "EVENTS_PRUNED",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::ServerBusy => "SERVER_BUSY",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::Unavailable => "UNAVAILABLE",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::RunMoved => "RUN_MOVED",
            Self::StoreCorrupt => "STORE_CORRUPT",
            Self::Internal => "INTERNAL",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::RunInUse => "RUN_IN_USE",
        }
    }
}

impl EngineError {
    /// Whether the store refused a write for lack of space or I/O, which
    /// a retry can outlast, rather than for something in the data.
    pub fn is_storage_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(format!("json: {err}"))
    }
}
