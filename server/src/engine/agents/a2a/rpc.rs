//! JSON-RPC 2.0 calls to an agent's endpoint, in the method names and
//! message shapes of its protocol version.

use super::super::error::{AgentError, fail, quote, read_limited};
use super::super::retry_after::retry_after;
use super::super::{describe_http_error, http_client};
use super::MAX_BODY;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V1,
    V03,
}

impl Version {
    /// The `A2A-Version` header.
    pub fn header(self) -> &'static str {
        match self {
            Version::V1 => "1.0",
            Version::V03 => "0.3",
        }
    }
    pub fn send(self) -> &'static str {
        match self {
            Version::V1 => "SendMessage",
            Version::V03 => "message/send",
        }
    }
    pub fn get(self) -> &'static str {
        match self {
            Version::V1 => "GetTask",
            Version::V03 => "tasks/get",
        }
    }
    pub fn cancel(self) -> &'static str {
        match self {
            Version::V1 => "CancelTask",
            Version::V03 => "tasks/cancel",
        }
    }
}

/// Where and how to call an agent.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub version: Version,
    pub headers: HeaderMap,
}

/// The parameters of a non-blocking send of `texts`, one text part each.
pub fn send_params(version: Version, texts: &[String]) -> Value {
    let message_id = uuid::Uuid::now_v7().to_string();
    match version {
        Version::V1 => json!({
            "message": {
                "messageId": message_id,
                "role": "ROLE_USER",
                "parts": texts.iter().map(|t| json!({"text": t})).collect::<Vec<_>>(),
            },
            "configuration": {"returnImmediately": true},
        }),
        Version::V03 => json!({
            "message": {
                "kind": "message",
                "messageId": message_id,
                "role": "user",
                "parts": texts.iter().map(|t| json!({"kind": "text", "text": t})).collect::<Vec<_>>(),
            },
            "configuration": {"blocking": false},
        }),
    }
}

/// One JSON-RPC call; the `result`, or the agent's error as the message.
pub async fn call(endpoint: &Endpoint, method: &str, params: Value) -> Result<Value, AgentError> {
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let response = http_client()
        .post(&endpoint.url)
        .headers(endpoint.headers.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            AgentError::transient(format!(
                "cannot reach the A2A agent at {}: {}",
                endpoint.url,
                describe_http_error(&e.without_url())
            ))
        })?;
    let status = response.status();
    let wait = retry_after(response.headers());
    let bytes = read_limited(response, MAX_BODY).await?;
    let status_error = || {
        AgentError::of_status(
            status,
            format!(
                "the A2A agent at {} answered {method} with {status}: {}",
                endpoint.url,
                quote(&bytes)
            ),
        )
        .with_retry_after(wait)
    };
    if !status.is_success() {
        // A rate limit or an overloaded server may pass, whatever error
        // its body carries.
        let error = status_error();
        if error.is_transient() {
            return Err(error);
        }
    }
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) if !status.is_success() => return Err(status_error()),
        Err(e) => {
            return fail(format!(
                "the A2A agent at {} answered {method} with a body that is not JSON ({e}): {}",
                endpoint.url,
                quote(&bytes)
            ));
        }
    };
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let code = error["code"]
            .as_i64()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        let data = match &error["data"] {
            Value::Null => String::new(),
            Value::String(s) => format!(" ({s})"),
            other => format!(" ({})", quote(other.to_string().as_bytes())),
        };
        return fail(format!(
            "the A2A agent answered {method} with error{code}: {message}{data}"
        ));
    }
    if !status.is_success() {
        return Err(status_error());
    }
    match value.get("result") {
        Some(r) if !r.is_null() => Ok(r.clone()),
        _ => fail(format!(
            "the A2A agent answered {method} without a result: {}",
            quote(&bytes)
        )),
    }
}
