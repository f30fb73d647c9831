//! `llm://PROVIDER/MODEL` agents: one chat completion over HTTP.
//!
//! `anthropic` speaks the Messages API ([`anthropic`]); every other
//! provider speaks OpenAI Chat Completions ([`openai`]). Known providers
//! have a default base URL; `config.api_base` overrides it, and makes any
//! other provider name usable ([`target`]).
//!
//! The request carries the node's prompt as the system message and
//! [`super::user_message`] as the user message. Config keys the API knows
//! (see [`openai::KEYS`] and [`anthropic::KEYS`]) are forwarded unchanged;
//! everything else (`api_base`, `api_key`, `stream`, …) stays here.
//!
//! The API key is `config.api_key`, else — only when talking to the
//! provider's own default endpoint — the provider's usual environment
//! variable. A key is never put into an error message: only the provider's
//! own error text is, with the key scrubbed from it as well.
//!
//! Answers stream by default (`config.stream: false` turns that off): every
//! text piece goes to the watchers as it arrives. One request is one
//! attempt: a 408, 429 or 5xx answer or a failed connection is a transient
//! error carrying the server's `Retry-After`, which the node's retry policy
//! retries (by default too); the node's deadline bounds the attempt, since
//! the executor drops this future when it passes.

mod anthropic;
mod openai;
mod pricing;
mod sse;
mod target;

pub use target::{PROVIDER_KEY_VARS, credential_host};

use super::error::{AgentError, quote, read_limited};
use super::retry_after::retry_after;
use super::{AgentCall, AgentOutput, TEXT, describe_http_error, http_client, user_message};
use crate::model::Usage;
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sse::SseParser;
use target::{Api, Target};

/// The most of a non-streamed body we read.
const MAX_BODY: usize = 64 << 20;

/// What the model answered, whichever API it came through.
#[derive(Default, Debug)]
struct Answer {
    content: String,
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

pub async fn execute(rest: &str, call: &AgentCall) -> Result<AgentOutput, AgentError> {
    let (provider, model) = match rest.split_once('/') {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => (p, m),
        _ => {
            return Err(AgentError::configuration(format!(
                "agent '{}' must look like llm://PROVIDER/MODEL",
                call.agent
            )));
        }
    };
    let target = target::target(provider, &call.config).map_err(AgentError::configuration)?;
    let result = run(&target, model, call).await;
    // Whatever the provider echoed back, the key does not leave this agent.
    result.map_err(|e| {
        e.map_message(|m| match &target.key {
            Some(k) if k.len() >= 4 => m.replace(k.as_str(), "[redacted]"),
            _ => m,
        })
    })
}

async fn run(target: &Target, model: &str, call: &AgentCall) -> Result<AgentOutput, AgentError> {
    let stream = match call.config.get("stream") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(AgentError::configuration(format!(
                "config.stream must be true or false, got {}",
                kind(other)
            )));
        }
    };
    let system = call.prompt.as_deref().filter(|p| !p.trim().is_empty());
    let mut user = user_message(call);
    let mut system = system.map(str::to_string);
    if user.trim().is_empty() {
        // The APIs need a non-empty user turn: a node with only a prompt
        // sends the prompt as the user's message.
        match system.take() {
            Some(p) => user = p,
            None => {
                return Err(AgentError::configuration(format!(
                    "node '{}' has nothing to send to the model: give it a system_prompt, inputs or upstream nodes",
                    call.node_id
                )));
            }
        }
    }
    let body = match target.api {
        Api::OpenAi => openai::body(
            &target.provider,
            model,
            system.as_deref(),
            &user,
            &call.config,
            stream,
        ),
        Api::Anthropic => anthropic::body(model, system.as_deref(), &user, &call.config, stream)
            .map_err(AgentError::configuration)?,
    };
    let body = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the request: {e}"))?;
    let headers = target::headers(target).map_err(AgentError::configuration)?;
    let response = send(target, headers, body).await?;

    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut answer = if is_sse {
        read_stream(target, response, call).await?
    } else {
        // Also the case of a server that ignores `stream: true`.
        let bytes = read_limited(response, MAX_BODY)
            .await
            .map_err(|e| e.map_message(|m| format!("{}: {m}", target.provider)))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} returned a body that is not JSON ({e}): {}",
                target.provider,
                quote(&bytes)
            )
        })?;
        let answer = match target.api {
            Api::OpenAi => openai::parse(&target.provider, &value)?,
            Api::Anthropic => anthropic::parse(&value)?,
        };
        if stream && !answer.content.is_empty() {
            let _ = call.deltas.send(answer.content.clone());
        }
        answer
    };
    let model_used = answer
        .model
        .take()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| model.to_string());
    let cost_usd = pricing::cost(&model_used, answer.input_tokens, answer.output_tokens)
        .or_else(|| pricing::cost(model, answer.input_tokens, answer.output_tokens))
        .unwrap_or(0.0);
    Ok(AgentOutput {
        content: answer.content,
        media_type: TEXT,
        model: Some(model_used),
        usage: Usage {
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            cost_usd,
        },
    })
}

/// Posts the request. An error answer fails the attempt with its status's
/// kind and the server's wait hint: whether and when to try again is the
/// node's retry policy's to decide, with one budget for every cause.
async fn send(
    target: &Target,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, AgentError> {
    let response = http_client()
        .post(&target.url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            AgentError::transient(format!(
                "cannot reach {} at {}: {}",
                target.provider,
                target.url,
                describe_http_error(&e.without_url())
            ))
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let wait = retry_after(response.headers());
    // The status says what failed; a body that cannot be read only
    // leaves the provider's explanation out.
    let bytes = read_limited(response, 1 << 20).await.unwrap_or_default();
    Err(AgentError::of_status(
        status,
        format!(
            "{} returned {status}: {}",
            target.provider,
            error_message(&bytes)
        ),
    )
    .with_retry_after(wait))
}

/// The provider's own words for an error: `error.message` (OpenAI and
/// Anthropic alike), else the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let error = &v["error"];
        let message = error["message"]
            .as_str()
            .or_else(|| error.as_str())
            .or_else(|| v["message"].as_str())
            .or_else(|| v["detail"].as_str());
        if let Some(m) = message {
            return m.to_string();
        }
    }
    let text = quote(body);
    if text.is_empty() {
        "(no details)".into()
    } else {
        text
    }
}

/// Reads a server-sent event stream, forwarding text as it comes.
async fn read_stream(
    target: &Target,
    response: reqwest::Response,
    call: &AgentCall,
) -> Result<Answer, AgentError> {
    let mut answer = Answer::default();
    let mut parser = SseParser::default();
    let mut body = response.bytes_stream();
    let mut done = false;
    while !done {
        let Some(chunk) = body.next().await else {
            break;
        };
        let chunk = chunk.map_err(|e| {
            AgentError::transient(format!(
                "the {} stream broke off: {}",
                target.provider,
                describe_http_error(&e.without_url())
            ))
        })?;
        for event in parser.push(&chunk) {
            done = match target.api {
                Api::OpenAi => openai::event(&target.provider, &event, &mut answer, call)?,
                Api::Anthropic => anthropic::event(&event, &mut answer, call)?,
            };
            if done {
                break;
            }
        }
    }
    if !done && let Some(event) = parser.finish() {
        match target.api {
            Api::OpenAi => openai::event(&target.provider, &event, &mut answer, call)?,
            Api::Anthropic => anthropic::event(&event, &mut answer, call)?,
        };
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_keep_only_the_message() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-te***3456.","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_message(body),
            "Incorrect API key provided: sk-te***3456."
        );
        let body = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(error_message(body), "invalid x-api-key");
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
    }
}
