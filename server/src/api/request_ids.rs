//! A StartRun's or ReplayRun's own id (AIP-155), checked here and
//! digested with what the request asks: a retry finds the run the first
//! call stored, and a different request reusing the id is refused.

use crate::error::EngineError;
use crate::store::{RequestKey, sha256_hex};
use serde::Serialize;
use tonic::Status;

/// The longest request_id accepted.
const MAX_REQUEST_ID: usize = 128;

/// The key of a request naming itself `id` and asking `asked`; None when
/// `id` is empty (the request does not name itself).
pub fn request_key(id: String, asked: &impl Serialize) -> Result<Option<RequestKey>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_REQUEST_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Status::from(EngineError::invalid_argument(format!(
            "request_id must be 1 to {MAX_REQUEST_ID} printable ASCII characters without spaces (a UUID, say); got {} bytes",
            id.len()
        ))
        .violation("request_id", "1 to 128 printable ASCII characters")));
    }
    let asked = serde_json::to_vec(asked).map_err(|e| {
        Status::from(EngineError::Internal(format!(
            "cannot digest the request: {e}"
        )))
    })?;
    Ok(Some(RequestKey {
        id,
        sha256: sha256_hex(&asked),
    }))
}
