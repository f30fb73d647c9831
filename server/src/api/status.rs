//! The one place engine errors become gRPC statuses. Internal details are
//! logged here and never sent to the client.

use crate::error::EngineError;
use tonic::Status;
use tonic::codegen::http;

impl From<EngineError> for Status {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::InvalidArgument(m) => Status::invalid_argument(bounded(m)),
            EngineError::NotFound(m) => Status::not_found(bounded(m)),
            EngineError::FailedPrecondition(m) => Status::failed_precondition(bounded(m)),
            EngineError::ResourceExhausted(m) => Status::resource_exhausted(bounded(m)),
            EngineError::OutOfRange(m) => Status::out_of_range(bounded(m)),
            EngineError::Moved(m) => Status::unavailable(bounded(m)),
            EngineError::AlreadyExists(m) => Status::already_exists(bounded(m)),
            EngineError::Unavailable(m) => {
                tracing::warn!(message = %m, "store unavailable");
                Status::unavailable(bounded(m))
            }
            corrupt @ EngineError::Corrupt { .. } => {
                // The message names a table, column and row, never a value.
                let message = corrupt.to_string();
                tracing::error!(%message, "corrupt store");
                Status::data_loss(bounded(message))
            }
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; see the server log")
            }
        }
    }
}

/// Most a status message may take once percent-encoded. It travels in the
/// `grpc-message` trailer, and clients refuse header blocks over 16 KiB by
/// default: a longer message would reach them as a protocol error.
const MAX_MESSAGE_ENCODED: usize = 12 * 1024;

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
        Status::invalid_argument(format!(
            "the request is not a valid message for this method: {message}"
        ))
    } else if status.code() == tonic::Code::OutOfRange
        && message.contains("message length too large")
    {
        let numbers: Vec<&str> = message
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        match numbers.as_slice() {
            [size, limit, ..] => Status::resource_exhausted(format!(
                "the request is {size} bytes; this server accepts messages of at most {limit} bytes"
            )),
            _ => Status::resource_exhausted(message),
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
            let status = Status::from(EngineError::InvalidArgument(unit.repeat(100_000)));
            let mut headers = http::HeaderMap::new();
            status.add_header(&mut headers).unwrap();
            let encoded = headers["grpc-message"].len();
            assert!(encoded <= MAX_MESSAGE_ENCODED, "{unit}: {encoded} bytes");
            assert!(status.message().ends_with("bytes)"), "{}", status.message());
        }
        let short = Status::from(EngineError::NotFound("Run 'x' not found".into()));
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
