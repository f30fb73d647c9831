//! `llm://PROVIDER/MODEL` agents: one chat completion over HTTP.
//!
//! `anthropic` speaks the Messages API (`POST {base}/messages`); every other
//! provider speaks OpenAI Chat Completions (`POST {base}/chat/completions`).
//! Known providers have a default base URL; `config.api_base` overrides it,
//! and makes any other provider name usable.
//!
//! The request carries the node's prompt as the system message and
//! [`super::user_message`] as the user message. Config keys the API knows
//! (see [`OPENAI_KEYS`] and [`ANTHROPIC_KEYS`]) are forwarded unchanged;
//! everything else (`api_base`, `api_key`, `stream`, …) stays here.
//!
//! The API key is `config.api_key`, else — only when talking to the
//! provider's own default endpoint — the provider's usual environment
//! variable. A key is never put into an error message: only the provider's
//! own error text is, with the key scrubbed from it as well.
//!
//! Answers stream by default (`config.stream: false` turns that off): every
//! text piece goes to the watchers as it arrives. 429 and 5xx answers are
//! retried here, honouring `Retry-After`; the node's deadline still bounds
//! the whole attempt, since the executor drops this future when it passes.

use super::error::{AgentError, kind_of_status, quote, read_limited};
use super::{AgentCall, AgentOutput, TEXT, describe_http_error, http_client, user_message};
use crate::model::Usage;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Config keys forwarded to Chat Completions.
pub const OPENAI_KEYS: &[&str] = &[
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
];

/// Config keys forwarded to the Messages API.
pub const ANTHROPIC_KEYS: &[&str] = &[
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "stop_sequences",
];

const ANTHROPIC_VERSION: &str = "2023-06-01";
const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 1024;
/// Tries per attempt for 429 and 5xx answers.
const MAX_TRIES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The most of a non-streamed body we read.
const MAX_BODY: usize = 64 << 20;

/// The environment variables holding the known providers' keys.
pub const PROVIDER_KEY_VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY",
];

/// The host a credential in `config` would be sent to, or None when that
/// is the provider's own default endpoint.
pub(super) fn credential_host(provider: &str, config: &Map<String, Value>) -> Option<String> {
    let base = config
        .get("api_base")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|b| !b.is_empty())?;
    let host = super::url_host(base);
    let default_host = defaults(provider).and_then(|(b, _, _)| super::url_host(b));
    match (host, default_host) {
        (Some(h), Some(d)) if h == d => None,
        (Some(h), _) => Some(h),
        (None, _) => Some(base.to_string()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    OpenAi,
    Anthropic,
}

/// A provider's defaults: base URL and the environment variable of its key
/// (`None`: it needs none).
fn defaults(provider: &str) -> Option<(&'static str, Option<&'static str>, Api)> {
    Some(match provider {
        "openai" => (
            "https://api.openai.com/v1",
            Some("OPENAI_API_KEY"),
            Api::OpenAi,
        ),
        "anthropic" => (
            "https://api.anthropic.com/v1",
            Some("ANTHROPIC_API_KEY"),
            Api::Anthropic,
        ),
        "ollama" => ("http://localhost:11434/v1", None, Api::OpenAi),
        "openrouter" => (
            "https://openrouter.ai/api/v1",
            Some("OPENROUTER_API_KEY"),
            Api::OpenAi,
        ),
        "groq" => (
            "https://api.groq.com/openai/v1",
            Some("GROQ_API_KEY"),
            Api::OpenAi,
        ),
        "together" => (
            "https://api.together.xyz/v1",
            Some("TOGETHER_API_KEY"),
            Api::OpenAi,
        ),
        "deepseek" => (
            "https://api.deepseek.com/v1",
            Some("DEEPSEEK_API_KEY"),
            Api::OpenAi,
        ),
        "mistral" => (
            "https://api.mistral.ai/v1",
            Some("MISTRAL_API_KEY"),
            Api::OpenAi,
        ),
        "vllm" => ("http://localhost:8000/v1", None, Api::OpenAi),
        _ => return None,
    })
}

struct Target {
    provider: String,
    api: Api,
    url: String,
    key: Option<String>,
}

fn target(provider: &str, config: &Map<String, Value>) -> Result<Target, String> {
    let api_base = match config.get("api_base") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => {
            Some(s.trim().trim_end_matches('/').to_string())
        }
        Some(other) => {
            return Err(format!(
                "config.api_base must be a URL string, got {}",
                kind(other)
            ));
        }
    };
    let config_key = match config.get("api_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(format!(
                "config.api_key must be a string, got {}",
                kind(other)
            ));
        }
    };
    let known = defaults(provider);
    let (base, api) = match (&api_base, known) {
        (Some(b), Some((_, _, api))) => (b.clone(), api),
        (Some(b), None) => (b.clone(), Api::OpenAi),
        (None, Some((b, _, api))) => (b.to_string(), api),
        (None, None) => {
            return Err(format!(
                "unknown LLM provider '{provider}': use one of openai, anthropic, ollama, openrouter, groq, together, \
                 deepseek, mistral, vllm, or set config.api_base to an OpenAI-compatible endpoint"
            ));
        }
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "config.api_base must start with http:// or https://, got '{base}'"
        ));
    }
    // The server's own key goes only to the provider's own endpoint, never
    // to an endpoint a workflow names.
    let key = match (config_key, known) {
        (Some(k), _) => Some(k),
        (None, Some((_, Some(var), _))) if api_base.is_none() => match std::env::var(var) {
            Ok(k) if !k.is_empty() => Some(k),
            _ => {
                return Err(format!(
                    "llm://{provider} needs an API key: set {var} in the server's environment, \
                     or config.api_key (e.g. api_key: \"${{env.{var}}}\")"
                ));
            }
        },
        _ => None,
    };
    let path = match api {
        Api::OpenAi => "chat/completions",
        Api::Anthropic => "messages",
    };
    Ok(Target {
        provider: provider.to_string(),
        api,
        url: format!("{base}/{path}"),
        key,
    })
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
    let target = target(provider, &call.config).map_err(AgentError::configuration)?;
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
        Api::OpenAi => openai_body(
            &target.provider,
            model,
            system.as_deref(),
            &user,
            &call.config,
            stream,
        ),
        Api::Anthropic => anthropic_body(model, system.as_deref(), &user, &call.config, stream)
            .map_err(AgentError::configuration)?,
    };
    let body = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the request: {e}"))?;
    let headers = headers(target).map_err(AgentError::configuration)?;
    let response = send(target, &headers, body).await?;

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
            Api::OpenAi => parse_openai(&target.provider, &value)?,
            Api::Anthropic => parse_anthropic(&value)?,
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
    let cost_usd = cost(&model_used, answer.input_tokens, answer.output_tokens)
        .or_else(|| cost(model, answer.input_tokens, answer.output_tokens))
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

fn openai_body(
    provider: &str,
    model: &str,
    system: Option<&str>,
    user: &str,
    config: &Map<String, Value>,
    stream: bool,
) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": user}));
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(messages));
    for key in OPENAI_KEYS {
        if let Some(v) = config.get(*key).filter(|v| !v.is_null()) {
            body.insert((*key).into(), v.clone());
        }
    }
    if stream {
        body.insert("stream".into(), true.into());
        // Mistral rejects unknown fields and reports usage in its last chunk anyway.
        if provider != "mistral" {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    Value::Object(body)
}

fn anthropic_body(
    model: &str,
    system: Option<&str>,
    user: &str,
    config: &Map<String, Value>,
    stream: bool,
) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), ANTHROPIC_DEFAULT_MAX_TOKENS.into());
    if let Some(s) = system {
        body.insert("system".into(), s.into());
    }
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": user}]),
    );
    for key in ANTHROPIC_KEYS {
        if let Some(v) = config.get(*key).filter(|v| !v.is_null()) {
            body.insert((*key).into(), v.clone());
        }
    }
    // OpenAI's spelling of stop sequences works here too.
    if !body.contains_key("stop_sequences") {
        match config.get("stop") {
            Some(Value::String(s)) => {
                body.insert("stop_sequences".into(), json!([s]));
            }
            Some(list @ Value::Array(_)) => {
                body.insert("stop_sequences".into(), list.clone());
            }
            _ => {}
        }
    }
    if !body["max_tokens"].is_u64() {
        return Err(format!(
            "config.max_tokens must be a positive integer, got {}",
            body["max_tokens"]
        ));
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Ok(Value::Object(body))
}

fn headers(target: &Target) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let secret = |value: String| -> Result<HeaderValue, String> {
        // The message names no part of the value.
        let mut v = HeaderValue::try_from(value).map_err(|_| {
            "the API key contains characters not allowed in an HTTP header".to_string()
        })?;
        v.set_sensitive(true);
        Ok(v)
    };
    match target.api {
        Api::OpenAi => {
            if let Some(k) = &target.key {
                h.insert(
                    reqwest::header::AUTHORIZATION,
                    secret(format!("Bearer {k}"))?,
                );
            }
        }
        Api::Anthropic => {
            if let Some(k) = &target.key {
                h.insert(HeaderName::from_static("x-api-key"), secret(k.clone())?);
            }
            h.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
    }
    Ok(h)
}

/// Posts the request, retrying 429 and 5xx answers.
async fn send(
    target: &Target,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, AgentError> {
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        tries += 1;
        let response = http_client()
            .post(&target.url)
            .headers(headers.clone())
            .body(body.clone())
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
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let wait = retry_after(response.headers())
            .unwrap_or(backoff)
            .min(MAX_WAIT);
        let bytes = read_limited(response, 1 << 20).await.unwrap_or_default();
        let message = error_message(&bytes);
        if retryable && tries < MAX_TRIES {
            tracing::debug!(provider = %target.provider, %status, ?wait, "retrying the LLM request");
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2);
            continue;
        }
        let after = if tries > 1 {
            format!(" (after {tries} tries)")
        } else {
            String::new()
        };
        return Err(AgentError {
            kind: kind_of_status(status),
            message: format!("{} returned {status}: {message}{after}", target.provider),
        });
    }
}

/// `Retry-After` in seconds or as an HTTP date, or OpenAI's `retry-after-ms`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(
            (ms / 1000.0).min(MAX_WAIT.as_secs_f64()),
        ));
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64())));
    }
    let at = parse_http_date(value)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ").map(|(_, r)| r).unwrap_or(s);
    let mut it = rest.split_whitespace();
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + (h * 3600 + m * 60 + sec) as i64).ok()
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

#[derive(Default, Debug)]
struct Answer {
    content: String,
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
}

fn parse_openai(provider: &str, v: &Value) -> Result<Answer, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let m = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(format!("{provider} returned an error: {m}"));
    }
    let message = &v["choices"][0]["message"];
    if message.is_null() {
        return Err(format!(
            "{provider} returned no choices: {}",
            quote(v.to_string().as_bytes())
        ));
    }
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        // Content given as parts.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => match message["refusal"].as_str() {
            Some(r) => return Err(format!("the model refused: {r}")),
            None => String::new(),
        },
    };
    let (input_tokens, output_tokens) = openai_usage(v).unwrap_or((0, 0));
    Ok(Answer {
        content,
        model: v["model"].as_str().map(str::to_string),
        input_tokens,
        output_tokens,
    })
}

fn openai_usage(v: &Value) -> Option<(i64, i64)> {
    let usage = [&v["usage"], &v["x_groq"]["usage"]]
        .into_iter()
        .find(|u| u.is_object())?;
    Some((
        usage["prompt_tokens"].as_i64().unwrap_or(0),
        usage["completion_tokens"].as_i64().unwrap_or(0),
    ))
}

fn parse_anthropic(v: &Value) -> Result<Answer, String> {
    if v["type"] == "error" {
        return Err(format!(
            "anthropic returned an error: {}",
            anthropic_error(v)
        ));
    }
    let Some(blocks) = v["content"].as_array() else {
        return Err(format!(
            "anthropic returned no content: {}",
            quote(v.to_string().as_bytes())
        ));
    };
    let content = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    Ok(Answer {
        content,
        model: v["model"].as_str().map(str::to_string),
        input_tokens: v["usage"]["input_tokens"].as_i64().unwrap_or(0),
        output_tokens: v["usage"]["output_tokens"].as_i64().unwrap_or(0),
    })
}

fn anthropic_error(v: &Value) -> String {
    let e = &v["error"];
    match (e["type"].as_str(), e["message"].as_str()) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => e.to_string(),
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
                Api::OpenAi => openai_event(&target.provider, &event, &mut answer, call)?,
                Api::Anthropic => anthropic_event(&event, &mut answer, call)?,
            };
            if done {
                break;
            }
        }
    }
    if !done && let Some(event) = parser.finish() {
        match target.api {
            Api::OpenAi => openai_event(&target.provider, &event, &mut answer, call)?,
            Api::Anthropic => anthropic_event(&event, &mut answer, call)?,
        };
    }
    Ok(answer)
}

/// Handles one Chat Completions chunk; true at `[DONE]`.
fn openai_event(
    provider: &str,
    event: &SseEvent,
    answer: &mut Answer,
    call: &AgentCall,
) -> Result<bool, String> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(true);
    }
    if data.is_empty() {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "{provider} sent a stream chunk that is not JSON ({e}): {}",
            quote(data.as_bytes())
        )
    })?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let m = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(format!("{provider} stream error: {m}"));
    }
    if let Some(m) = v["model"].as_str().filter(|m| !m.is_empty()) {
        answer.model = Some(m.to_string());
    }
    if let Some(text) = v["choices"][0]["delta"]["content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        answer.content.push_str(text);
        let _ = call.deltas.send(text.to_string());
    }
    if let Some((i, o)) = openai_usage(&v) {
        answer.input_tokens = i;
        answer.output_tokens = o;
    }
    Ok(false)
}

/// Handles one Messages stream event; true at `message_stop`.
fn anthropic_event(
    event: &SseEvent,
    answer: &mut Answer,
    call: &AgentCall,
) -> Result<bool, String> {
    let data = event.data.trim();
    if data.is_empty() {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "anthropic sent a stream event that is not JSON ({e}): {}",
            quote(data.as_bytes())
        )
    })?;
    let kind = v["type"].as_str().or(event.event.as_deref()).unwrap_or("");
    match kind {
        "message_start" => {
            let m = &v["message"];
            if let Some(model) = m["model"].as_str() {
                answer.model = Some(model.to_string());
            }
            answer.input_tokens = m["usage"]["input_tokens"].as_i64().unwrap_or(0);
            answer.output_tokens = m["usage"]["output_tokens"].as_i64().unwrap_or(0);
        }
        "content_block_delta" => {
            if let Some(text) = v["delta"]["text"].as_str().filter(|t| !t.is_empty()) {
                answer.content.push_str(text);
                let _ = call.deltas.send(text.to_string());
            }
        }
        "message_delta" => {
            if let Some(o) = v["usage"]["output_tokens"].as_i64() {
                answer.output_tokens = o;
            }
            if let Some(i) = v["usage"]["input_tokens"].as_i64() {
                answer.input_tokens = i;
            }
        }
        "message_stop" => return Ok(true),
        "error" => return Err(format!("anthropic stream error: {}", anthropic_error(&v))),
        _ => {}
    }
    Ok(false)
}

#[derive(Debug, Default, PartialEq)]
struct SseEvent {
    event: Option<String>,
    data: String,
}

/// Server-sent events, fed in arbitrary byte chunks.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(e) = self.line(&line) {
                out.push(e);
            }
        }
        out
    }

    /// The last event of a stream that ended without a blank line.
    fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            self.line(rest.trim_end_matches('\r'));
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if self.data.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.data).join("\n");
        Some(SseEvent { event, data })
    }
}

/// USD per million input and output tokens of well-known models.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-opus", 15.00, 75.00),
    ("deepseek-chat", 0.27, 1.10),
    ("deepseek-reasoner", 0.55, 2.19),
];

/// The cost of a call when the model's price is known. A model matches a
/// table entry exactly or with a date or `-latest` suffix
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`); a router's vendor
/// prefix (`openai/gpt-4o`) is ignored. Other models have no known price.
fn cost(model: &str, input_tokens: i64, output_tokens: i64) -> Option<f64> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let (_, input, output) = PRICES
        .iter()
        .find(|(base, _, _)| match name.strip_prefix(base) {
            Some("") | Some("-latest") => true,
            Some(rest) => rest
                .strip_prefix('-')
                .is_some_and(|d| d.len() >= 4 && d[..4].bytes().all(|b| b.is_ascii_digit())),
            None => false,
        })?;
    Some((input_tokens.max(0) as f64 * input + output_tokens.max(0) as f64 * output) / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::default();
        let mut events = p.push(b"event: message_start\r\ndata: {\"a\"");
        assert!(events.is_empty());
        events.extend(p.push(b":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\ndata: [DONE]"));
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0],
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into()
            }
        );
        assert_eq!(events[1].data, "x\ny");
        assert_eq!(p.finish().unwrap().data, "[DONE]");
    }

    #[test]
    fn prices_match_dated_names_only() {
        assert_eq!(cost("gpt-4o", 1_000_000, 1_000_000), Some(12.5));
        assert_eq!(cost("gpt-4o-2024-08-06", 1_000_000, 0), Some(2.5));
        assert_eq!(cost("gpt-4o-mini", 1_000_000, 1_000_000), Some(0.75));
        assert_eq!(
            cost("openai/gpt-4o-mini-2024-07-18", 0, 1_000_000),
            Some(0.6)
        );
        assert_eq!(
            cost("claude-sonnet-4-20250514", 1_000_000, 1_000_000),
            Some(18.0)
        );
        assert_eq!(cost("claude-3-5-haiku-latest", 1_000_000, 0), Some(0.8));
        assert_eq!(cost("claude-sonnet-4-5", 1, 1), None);
        assert_eq!(cost("llama3", 1, 1), None);
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(MAX_WAIT));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

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

    #[test]
    fn keys_come_from_config_or_the_environment_of_the_default_endpoint() {
        let config = |v: Value| v.as_object().unwrap().clone();
        let t = target("ollama", &config(json!({}))).unwrap();
        assert_eq!(t.url, "http://localhost:11434/v1/chat/completions");
        assert!(t.key.is_none());
        let t = target(
            "anthropic",
            &config(json!({"api_key": "k-123", "api_base": "http://127.0.0.1:9/v1/"})),
        )
        .unwrap();
        assert_eq!(
            (t.url.as_str(), t.api, t.key.as_deref()),
            (
                "http://127.0.0.1:9/v1/messages",
                Api::Anthropic,
                Some("k-123")
            )
        );
        let t = target(
            "mine",
            &config(json!({"api_base": "http://127.0.0.1:9/v1"})),
        )
        .unwrap();
        assert_eq!(
            (t.url.as_str(), t.api),
            ("http://127.0.0.1:9/v1/chat/completions", Api::OpenAi)
        );
        // Target has no Debug, so that a key can never be printed.
        let err = |r: Result<Target, String>| r.err().expect("an error");
        assert!(err(target("mine", &config(json!({})))).contains("unknown LLM provider 'mine'"));
        if std::env::var("DEEPSEEK_API_KEY").is_err() {
            let e = err(target("deepseek", &config(json!({}))));
            assert!(e.contains("DEEPSEEK_API_KEY"), "{e}");
        }
    }

    #[test]
    fn bodies_forward_only_known_keys() {
        let config = json!({"temperature": 0.2, "max_tokens": 50, "api_key": "x", "api_base": "y", "stream": true, "top_k": 3, "stop": "END"});
        let config = config.as_object().unwrap();
        let b = openai_body("openai", "gpt-4o", Some("sys"), "hi", config, true);
        assert_eq!(
            b["messages"],
            json!([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(
            (
                b["temperature"].clone(),
                b["max_tokens"].clone(),
                b["stop"].clone()
            ),
            (json!(0.2), json!(50), json!("END"))
        );
        assert!(
            b.get("api_key").is_none() && b.get("top_k").is_none() && b.get("api_base").is_none()
        );
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        let b = anthropic_body("claude-sonnet-4", None, "hi", config, false).unwrap();
        assert_eq!(b["top_k"], 3);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert!(b.get("system").is_none() && b.get("stream").is_none() && b.get("stop").is_none());
        let b = anthropic_body("m", None, "hi", &Map::new(), true).unwrap();
        assert_eq!(b["max_tokens"], 1024);
    }
}
