//! The one error type of the engine and store. Each variant is a kind of
//! outcome a caller reacts to differently; the message is what a user reads.
//! `api::status` maps it to gRPC status codes in one place.

use thiserror::Error;

#[derive(Debug, Error)]
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
    /// Something inside retake broke. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

impl EngineError {
    pub fn run_not_found(run: &str) -> Self {
        Self::NotFound(format!("Run '{run}' not found"))
    }
}

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(format!("database: {err}"))
    }
}

impl From<sqlx::migrate::MigrateError> for EngineError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("database migration: {err}"))
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(format!("json: {err}"))
    }
}
