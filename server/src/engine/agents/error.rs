//! What went wrong in an attempt, and whether another attempt can help.
//! The retry policy retries only transient errors: a bad key or a bad
//! request fails the node at once instead of three times.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// May succeed if tried again: timeouts, rate limits, 5xx answers,
    /// connections refused or reset.
    Transient,
    /// The agent refused or failed the request itself (a 4xx answer, a
    /// failed task, a refusal); the same request fails again.
    Permanent,
    /// The node cannot run as configured (missing or invalid config, an
    /// unknown agent or model, a rejected credential).
    Configuration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
    /// How long the agent's server asked us to wait before trying again
    /// (`Retry-After`); the retry policy waits at least this long.
    pub retry_after: Option<Duration>,
}

impl AgentError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// An error answer with status `status`, of the kind that status means.
    pub fn of_status(status: reqwest::StatusCode, message: impl Into<String>) -> Self {
        Self::new(kind_of_status(status), message)
    }

    /// The same error with the server's wait hint.
    pub fn with_retry_after(self, d: Option<Duration>) -> Self {
        Self {
            retry_after: d,
            ..self
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    pub fn configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The same error with its message changed (a prefix, a secret cut).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        Self {
            message: f(self.message),
            ..self
        }
    }
}

/// An error that says nothing of its kind is permanent: retrying what is
/// not known to be transient only repeats it.
impl From<String> for AgentError {
    fn from(message: String) -> Self {
        Self::permanent(message)
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Err` of a permanent error, in functions that return [`AgentError`].
pub fn fail<T>(message: String) -> Result<T, AgentError> {
    Err(AgentError::permanent(message))
}

/// The kind of an HTTP error answer: 408, 429 and 5xx may pass, 401 and
/// 403 mean the credential or its rights are wrong, other 4xx are the
/// request's own fault.
fn kind_of_status(status: reqwest::StatusCode) -> ErrorKind {
    match status.as_u16() {
        408 | 425 | 429 => ErrorKind::Transient,
        401 | 403 => ErrorKind::Configuration,
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// The most of an answer's body a message quotes.
const MAX_QUOTE: usize = 300;

/// An answer's body as a message may quote it: trimmed, and cut after
/// [`MAX_QUOTE`] characters.
pub fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > MAX_QUOTE {
        format!("{}…", text.chars().take(MAX_QUOTE).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Reads at most `limit` bytes of an answer. A connection that breaks
/// off is transient; an answer over the limit is not.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, AgentError> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        AgentError::transient(format!(
            "reading the answer failed: {}",
            super::describe_http_error(&e.without_url())
        ))
    })? {
        if out.len() + chunk.len() > limit {
            return fail(format!("the answer is larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn statuses_have_kinds() {
        assert_eq!(
            kind_of_status(StatusCode::TOO_MANY_REQUESTS),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_of_status(StatusCode::BAD_GATEWAY),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_of_status(StatusCode::UNAUTHORIZED),
            ErrorKind::Configuration
        );
        assert_eq!(
            kind_of_status(StatusCode::FORBIDDEN),
            ErrorKind::Configuration
        );
        assert_eq!(
            kind_of_status(StatusCode::BAD_REQUEST),
            ErrorKind::Permanent
        );
        assert_eq!(kind_of_status(StatusCode::NOT_FOUND), ErrorKind::Permanent);
    }

    #[test]
    fn the_wait_hint_survives_a_changed_message() {
        let wait = Some(Duration::from_secs(2));
        let e = AgentError::of_status(StatusCode::TOO_MANY_REQUESTS, "slow down sk-1234")
            .with_retry_after(wait)
            .map_message(|m| m.replace("sk-1234", "[redacted]"));
        assert_eq!(
            (e.kind, e.message.as_str(), e.retry_after),
            (ErrorKind::Transient, "slow down [redacted]", wait)
        );
        assert_eq!(AgentError::transient("x").retry_after, None);
    }
}
