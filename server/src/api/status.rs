//! The one place engine errors become gRPC statuses. Each carries the
//! richer error model's details (`grpc-status-details-bin`): an ErrorInfo
//! with the reason and its facts, and where they apply BadRequest,
//! PreconditionFailure and RetryInfo (docs/errors.md). Internal details
//! are logged here and never sent to the client.

use crate::error::{EngineError, Reason};
use std::collections::HashMap;
use std::time::Duration;
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo's domain: the reasons are retake's own.
pub const ERROR_DOMAIN: &str = "retake";

impl From<EngineError> for Status {
    fn from(err: EngineError) -> Self {
        let reason = err.reason_or_default();
        let code = match &err {
            EngineError::InvalidArgument(_) => Code::InvalidArgument,
            EngineError::NotFound(_) => Code::NotFound,
            EngineError::FailedPrecondition(_) => Code::FailedPrecondition,
            EngineError::ResourceExhausted(_) => Code::ResourceExhausted,
            EngineError::OutOfRange(_) => Code::OutOfRange,
            EngineError::Moved(_) => Code::Unavailable,
            EngineError::AlreadyExists(_) => Code::AlreadyExists,
            EngineError::Unavailable(m) => {
                tracing::warn!(message = %m, "store unavailable");
                Code::Unavailable
            }
            corrupt @ EngineError::Corrupt { .. } => {
                // The message names a table, column and row, never a value.
                let message = corrupt.to_string();
                tracing::error!(%message, "corrupt store");
                return with_details(Code::DataLoss, message, reason, &[], None);
            }
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                return with_details(
                    Code::Internal,
                    "internal error; see the server log".into(),
                    reason,
                    &[],
                    None,
                );
            }
        };
        let problem = err.problem().expect("every other kind has a problem");
        let detail = &problem.detail;
        let message = bounded(problem.message.clone());
        // Hundreds of violations would not fit a header block: keep the
        // first ones that do (the message lists them all, cut to fit).
        let mut keep = detail.violations.len() + detail.preconditions.len();
        loop {
            let mut details = details_for(reason, &detail.metadata, retry_after(&err));
            let violations = detail.violations.iter().take(keep);
            for v in violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            let rest = keep.saturating_sub(detail.violations.len());
            for p in detail.preconditions.iter().take(rest) {
                details.add_precondition_failure_violation(
                    p.kind.clone(),
                    p.subject.clone(),
                    p.description.clone(),
                );
            }
            let status = Status::with_error_details(code, message.clone(), details);
            if status.details().len() <= MAX_DETAILS || keep == 0 {
                return status;
            }
            keep = keep * 3 / 4;
        }
    }
}

/// A status with only an ErrorInfo (and RetryInfo when given), for errors
/// made outside the engine (authentication, requests tonic refused).
pub fn with_details(
    code: Code,
    message: String,
    reason: Reason,
    metadata: &[(String, String)],
    retry: Option<Duration>,
) -> Status {
    status(code, bounded(message), details_for(reason, metadata, retry))
}

fn details_for(
    reason: Reason,
    metadata: &[(String, String)],
    retry: Option<Duration>,
) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> = metadata.iter().cloned().collect();
    details.set_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
    if retry.is_some() {
        details.set_retry_info(retry);
    }
    details
}

/// How long to wait before retrying, for the errors a retry can outlast:
/// the one the error names, or a default of its kind.
fn retry_after(err: &EngineError) -> Option<Duration> {
    let given = err
        .problem()
        .and_then(|p| p.detail.retry_after_ms)
        .map(Duration::from_millis);
    match err {
        EngineError::Unavailable(_) | EngineError::Moved(_) => {
            Some(given.unwrap_or(Duration::from_secs(1)))
        }
        _ => given,
    }
}

fn status(code: Code, message: String, details: ErrorDetails) -> Status {
    Status::with_error_details(code, message, details)
}

/// Most the details may take. They travel base64-encoded in the
/// `grpc-status-details-bin` trailer beside `grpc-message`, and hold the
/// message once more (google.rpc.Status has it too): both must fit the
/// 16 KiB clients take for a header block. With the message at most
/// [`MAX_MESSAGE_ENCODED`], this leaves 2 KiB for the details' own facts.
const MAX_DETAILS: usize = MAX_MESSAGE_ENCODED + 2 * 1024;

/// Most a status message may take once percent-encoded. It travels in the
/// `grpc-message` trailer, and clients refuse header blocks over 16 KiB by
/// default: a longer message would reach them as a protocol error.
const MAX_MESSAGE_ENCODED: usize = 5 * 1024;

/// The message, cut (with a note saying so) where its encoding would pass
/// `MAX_MESSAGE_ENCODED`: printable ASCII takes a byte, but for what tonic
/// percent-encodes (space and `"#%<>`?{}`, as anything else), three.
fn bounded(message: String) -> String {
    let mut size = 0;
    for (i, c) in message.char_indices() {
        size += match c {
            ' ' | '"' | '#' | '%' | '<' | '>' | '`' | '?' | '{' | '}' => 3,
            '!'..='~' => 1,
            _ => 3 * c.len_utf8(),
        };
        if size > MAX_MESSAGE_ENCODED - 100 {
            return format!(
                "{}… (cut; the whole message is {} bytes)",
                &message[..i],
                message.len()
            );
        }
    }
    message
}

/// Corrects the codes tonic gives requests that fail before reaching a
/// handler: an undecodable body (INTERNAL there) is the caller's
/// INVALID_ARGUMENT, and a message over the size limit (OUT_OF_RANGE there)
/// is RESOURCE_EXHAUSTED, with the limit in words.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusLayer;

impl<S> tower::Layer<S> for StatusLayer {
    type Service = StatusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct StatusService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for StatusService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(req);
        Box::pin(async move {
            let mut response = future.await?;
            correct_status(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only response's status (the only kind a request
/// that never reached its handler gets).
fn correct_status(headers: &mut http::HeaderMap) {
    if !matches!(
        headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(b"13" | b"11")
    ) {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let message = status.message();
    let corrected = if status.code() == tonic::Code::Internal
        && message.starts_with("failed to decode Protobuf message")
    {
        with_details(
            Code::InvalidArgument,
            format!("the request is not a valid message for this method: {message}"),
            Reason::InvalidRequest,
            &[],
            None,
        )
    } else if status.code() == tonic::Code::OutOfRange
        && message.contains("message length too large")
    {
        let numbers: Vec<&str> = message
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        match numbers.as_slice() {
            [size, limit, ..] => with_details(
                Code::ResourceExhausted,
                format!(
                    "the request is {size} bytes; this server accepts messages of at most {limit} bytes"
                ),
                Reason::LimitExceeded,
                &[
                    ("size".to_string(), size.to_string()),
                    ("limit".to_string(), limit.to_string()),
                ],
                None,
            ),
            _ => with_details(
                Code::ResourceExhausted,
                message.to_string(),
                Reason::LimitExceeded,
                &[],
                None,
            ),
        }
    } else {
        return;
    };
    headers.remove("grpc-message");
    let _ = corrected.add_header(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_become_invalid_argument() {
        let mut headers = http::HeaderMap::new();
        Status::internal("failed to decode Protobuf message: invalid wire type")
            .add_header(&mut headers)
            .unwrap();
        correct_status(&mut headers);
        assert_eq!(headers["grpc-status"], "3");
    }

    #[test]
    fn oversized_requests_become_resource_exhausted() {
        let mut headers = http::HeaderMap::new();
        Status::out_of_range(
            "Error, decoded message length too large: found 70000000 bytes, the limit is: 67108864 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        correct_status(&mut headers);
        assert_eq!(headers["grpc-status"], "8");
        let message = Status::from_header_map(&headers)
            .unwrap()
            .message()
            .to_string();
        assert!(message.contains("70000000 bytes"), "{message}");
        assert!(message.contains("67108864 bytes"), "{message}");
    }

    #[test]
    fn long_messages_are_cut_to_fit_a_header() {
        // Each as tonic encodes it: a byte, or three.
        for unit in ["w", "é", "%", "🦀", " ", "`", "{x} "] {
            let status = Status::from(EngineError::invalid_argument(unit.repeat(100_000)));
            let mut headers = http::HeaderMap::new();
            status.add_header(&mut headers).unwrap();
            let encoded = headers["grpc-message"].len();
            assert!(encoded <= MAX_MESSAGE_ENCODED, "{unit}: {encoded} bytes");
            // With the details, which repeat the message: within 16 KiB.
            let both = encoded + headers["grpc-status-details-bin"].len();
            assert!(both < 15 * 1024, "{unit}: {both} bytes");
            assert!(status.message().ends_with("bytes)"), "{}", status.message());
        }
        let short = Status::from(EngineError::not_found("Run 'x' not found"));
        assert_eq!(short.message(), "Run 'x' not found");
    }

    #[test]
    fn other_statuses_are_left_alone() {
        let mut headers = http::HeaderMap::new();
        Status::internal("internal error; see the server log")
            .add_header(&mut headers)
            .unwrap();
        correct_status(&mut headers);
        assert_eq!(headers["grpc-status"], "13");
    }
}

#[cfg(test)]
mod reason_tests {
    use super::*;
    use retake::v1::ErrorReason;
    use std::collections::BTreeSet;

    #[test]
    fn reasons_are_the_contracts_error_reasons() {
        let ours: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(ours.len(), Reason::ALL.len(), "a name is used twice");
        let contract: BTreeSet<&str> = (1..)
            .map_while(|n| ErrorReason::try_from(n).ok())
            .map(|r| r.as_str_name())
            .collect();
        assert_eq!(ours, contract);
    }

    #[test]
    fn every_error_carries_an_error_info() {
        let status = Status::from(EngineError::run_not_found("run_x"));
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "RUN_NOT_FOUND");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["runId"], "run_x");

        let internal = Status::from(EngineError::Internal("secret path /x".into()));
        assert_eq!(
            internal.get_error_details().error_info().unwrap().reason,
            "INTERNAL"
        );
        assert!(!format!("{internal:?}").contains("secret"));

        let busy = Status::from(EngineError::unavailable("shutting down"));
        assert!(busy.get_error_details().retry_info().is_some());
    }

    #[test]
    fn many_violations_are_cut_to_fit_a_header() {
        let mut err = EngineError::invalid_argument("bad").reason(Reason::WorkflowInvalid);
        for i in 0..500 {
            err = err.violation(format!("nodes.n{i}.agent"), "`agent` is required".repeat(3));
        }
        let status = Status::from(err);
        assert!(
            status.details().len() <= MAX_DETAILS,
            "{}",
            status.details().len()
        );
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "WORKFLOW_INVALID");
        let kept = details.bad_request().unwrap().field_violations.len();
        assert!(kept > 5 && kept < 500, "{kept}");
    }
}
