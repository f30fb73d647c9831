//! The one error type of the engine and store. Each variant is a kind of
//! outcome a caller reacts to differently; the message is what a user reads.
//! `api::status` maps it to gRPC status codes in one place; the store maps
//! its database's errors to it (store::errors), so nothing here knows the
//! database.

use thiserror::Error;

#[derive(Clone, Debug, Error)]
pub enum EngineError {
    /// The request itself is wrong: bad workflow, bad swap, unknown step.
    #[error("{0}")]
    InvalidArgument(String),
    /// An id that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A position (event sequence) outside what is kept.
    #[error("{0}")]
    OutOfRange(String),
    /// Over a configured limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The store cannot take writes right now (disk full, I/O error);
    /// nothing of the request was stored and a retry may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// What the request would create exists already: a request_id used
    /// before. The caller reads what the first request created.
    #[error("{0}")]
    AlreadyExists(String),
    /// The run is executed by another server now (this one's lease on it
    /// ran out and was taken over): nothing of the write was stored, and
    /// this server must stop executing it.
    #[error("{0}")]
    Moved(String),
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
    pub fn run_not_found(run: &str) -> Self {
        Self::NotFound(format!("Run '{}' not found", echo(run)))
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
