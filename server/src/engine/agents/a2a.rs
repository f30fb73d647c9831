//! `a2a://URL` agents: the Agent2Agent protocol over JSON-RPC 2.0.
//!
//! Each attempt reads the agent card (`{URL}/.well-known/agent-card.json`,
//! else the older `/.well-known/agent.json`; a URL ending in `.json` is
//! taken as the card itself) and picks its JSON-RPC interface:
//!
//! - protocol 1.0 — the card's `supportedInterfaces` entry with
//!   `protocolBinding: JSONRPC`; methods `SendMessage`, `GetTask`,
//!   `CancelTask`; roles `ROLE_USER`/`ROLE_AGENT`, parts `{text}` /
//!   `{data}`, states `TASK_STATE_*`; every request carries
//!   `A2A-Version: 1.0`.
//! - protocol 0.3 — a card whose interface (or top-level `url` and
//!   `protocolVersion`) says 0.3; methods `message/send`, `tasks/get`,
//!   `tasks/cancel`; roles `user`/`agent`, parts `{kind: "text"}` /
//!   `{kind: "data"}`, states `completed`, `input-required`, ….
//!
//! The message sent is the node's prompt (if any) as a first text part and
//! [`super::user_message`] as the next. It is sent without blocking
//! (`returnImmediately` / `blocking: false`); a Task that is not finished is
//! polled (200 ms, doubling up to 2 s) until it completes, fails, is
//! rejected or canceled — or until the node's deadline drops this future,
//! in which case the agent is asked to cancel the task.
//!
//! Output: the text parts of the answer (a Message's parts; a completed
//! Task's artifacts, else its status message, else its last agent message
//! in history), one per line; data parts are written as JSON among them.
//! An answer of data parts only is JSON (one part: that value; several: a
//! list). `config.api_key`, when given, is sent as a bearer token.

use super::error::{AgentError, fail, kind_of_status, quote, read_limited};
use super::{AgentCall, AgentOutput, JSON, TEXT, describe_http_error, http_client, user_message};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use std::time::Duration;

const CARD_PATH: &str = ".well-known/agent-card.json";
const LEGACY_CARD_PATH: &str = ".well-known/agent.json";
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(2);
const MAX_BODY: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V1,
    V03,
}

impl Version {
    fn header(self) -> &'static str {
        match self {
            Version::V1 => "1.0",
            Version::V03 => "0.3",
        }
    }
    fn send(self) -> &'static str {
        match self {
            Version::V1 => "SendMessage",
            Version::V03 => "message/send",
        }
    }
    fn get(self) -> &'static str {
        match self {
            Version::V1 => "GetTask",
            Version::V03 => "tasks/get",
        }
    }
    fn cancel(self) -> &'static str {
        match self {
            Version::V1 => "CancelTask",
            Version::V03 => "tasks/cancel",
        }
    }
}

#[derive(Clone, Debug)]
struct Endpoint {
    url: String,
    version: Version,
    headers: HeaderMap,
}

pub async fn execute(rest: &str, call: &AgentCall) -> Result<AgentOutput, AgentError> {
    let result = talk(rest, call).await;
    // Whatever the agent echoed back, the token does not leave this agent.
    result.map_err(|e| {
        e.map_message(
            |m| match call.config.get("api_key").and_then(Value::as_str) {
                Some(k) if k.len() >= 4 => m.replace(k, "[redacted]"),
                _ => m,
            },
        )
    })
}

async fn talk(rest: &str, call: &AgentCall) -> Result<AgentOutput, AgentError> {
    let base = agent_url(rest).map_err(AgentError::configuration)?;
    let mut headers = HeaderMap::new();
    match call.config.get("api_key") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if k.is_empty() => {}
        Some(Value::String(k)) => {
            let mut v = HeaderValue::try_from(format!("Bearer {k}")).map_err(|_| {
                AgentError::configuration(
                    "config.api_key contains characters not allowed in an HTTP header",
                )
            })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        Some(_) => {
            return Err(AgentError::configuration("config.api_key must be a string"));
        }
    }
    let (card_url, card) = fetch_card(&base, &headers).await?;
    let mut endpoint = choose_endpoint(&card, &card_url).map_err(AgentError::configuration)?;
    headers.insert(
        HeaderName::from_static("a2a-version"),
        HeaderValue::from_static(endpoint.version.header()),
    );
    endpoint.headers = headers;
    let agent_name = card["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string);

    let mut texts = Vec::new();
    if let Some(p) = call.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        texts.push(p.to_string());
    }
    let user = user_message(call);
    if !user.trim().is_empty() {
        texts.push(user);
    }
    if texts.is_empty() {
        return Err(AgentError::configuration(format!(
            "node '{}' has nothing to send to the agent: give it a system_prompt, inputs or upstream nodes",
            call.node_id
        )));
    }
    let params = send_params(endpoint.version, &texts);
    let result = rpc(&endpoint, endpoint.version.send(), params).await?;
    let parts = match Reply::parse(&result)? {
        Reply::Message(parts) => parts,
        Reply::Task(task) => wait_for(&endpoint, task).await?,
    };
    let (content, media_type) = output(parts)?;
    Ok(AgentOutput {
        content,
        media_type,
        model: agent_name,
        ..Default::default()
    })
}

/// The host a credential for agent `a2a://REST` is sent to.
pub(super) fn credential_host(rest: &str) -> String {
    agent_url(rest)
        .ok()
        .and_then(|u| super::url_host(&u))
        .unwrap_or_else(|| rest.to_string())
}

/// The agent's base URL: `a2a://http://host:port/path`. Without a scheme,
/// loopback hosts get http and every other host https.
fn agent_url(rest: &str) -> Result<String, String> {
    let rest = rest.trim();
    let with_scheme = if rest.starts_with("http://") || rest.starts_with("https://") {
        rest.to_string()
    } else if rest.contains("://") {
        return Err(format!(
            "a2a agents are reached over http:// or https://, not '{rest}'"
        ));
    } else {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let local = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        format!("{}://{rest}", if local { "http" } else { "https" })
    };
    Url::parse(&with_scheme).map_err(|e| format!("'{rest}' is not a valid agent URL: {e}"))?;
    Ok(with_scheme)
}

async fn fetch_card(base: &str, headers: &HeaderMap) -> Result<(String, Value), AgentError> {
    let candidates = if base.ends_with(".json") {
        vec![base.to_string()]
    } else {
        let b = base.trim_end_matches('/');
        vec![
            format!("{b}/{CARD_PATH}"),
            format!("{b}/{LEGACY_CARD_PATH}"),
        ]
    };
    let mut misses = Vec::new();
    for url in &candidates {
        let response = http_client()
            .get(url)
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| {
                AgentError::transient(format!(
                    "cannot reach the A2A agent at {url}: {}",
                    describe_http_error(&e.without_url())
                ))
            })?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            misses.push(format!("{url} ({status})"));
            continue;
        }
        let body = read_limited(response, MAX_BODY).await?;
        if !status.is_success() {
            return Err(AgentError {
                kind: kind_of_status(status),
                message: format!(
                    "the A2A agent card at {url} could not be read: {status}: {}",
                    quote(&body)
                ),
            });
        }
        let card: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the A2A agent card at {url} is not JSON: {e}"))?;
        if !card.is_object() {
            return fail(format!("the A2A agent card at {url} is not a JSON object"));
        }
        return Ok((url.clone(), card));
    }
    Err(AgentError::configuration(format!(
        "no A2A agent card found: {}",
        misses.join(", ")
    )))
}

/// The JSON-RPC interface to talk to, preferring protocol 1.x over 0.3.
fn choose_endpoint(card: &Value, card_url: &str) -> Result<Endpoint, String> {
    let mut offered = Vec::new();
    let mut candidates: Vec<(String, Version)> = Vec::new();
    let mut consider = |url: Option<&str>, binding: Option<&str>, version: &str| {
        let binding = binding.unwrap_or("JSONRPC");
        offered.push(format!("{binding} {version}"));
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return;
        };
        if !binding.eq_ignore_ascii_case("JSONRPC") {
            return;
        }
        if let Some(v) = protocol(version) {
            candidates.push((url.to_string(), v));
        }
    };
    if let Some(list) = card["supportedInterfaces"]
        .as_array()
        .filter(|l| !l.is_empty())
    {
        for i in list {
            // A 1.0 card without a version is current.
            let version = i["protocolVersion"]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or("1.0");
            consider(
                i["url"].as_str(),
                i["protocolBinding"].as_str().or(i["transport"].as_str()),
                version,
            );
        }
    } else {
        let version = card["protocolVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or("0.3.0");
        consider(
            card["url"].as_str(),
            card["preferredTransport"].as_str(),
            version,
        );
        for i in card["additionalInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            consider(i["url"].as_str(), i["transport"].as_str(), version);
        }
    }
    let Some((url, version)) = candidates
        .iter()
        .find(|(_, v)| *v == Version::V1)
        .or_else(|| candidates.first())
        .cloned()
    else {
        let offered = if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        };
        return Err(format!(
            "the A2A agent card at {card_url} offers no JSON-RPC interface of protocol 1.0 or 0.3 (it offers: {offered})"
        ));
    };
    // A relative interface URL is relative to the card.
    let url = Url::parse(card_url)
        .and_then(|base| base.join(&url))
        .map_err(|e| {
            format!("the A2A agent card at {card_url} names an invalid endpoint '{url}': {e}")
        })?;
    Ok(Endpoint {
        url: url.to_string(),
        version,
        headers: HeaderMap::new(),
    })
}

fn protocol(version: &str) -> Option<Version> {
    let mut it = version.trim().trim_start_matches('v').split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next().unwrap_or("0").parse().ok()?;
    match (major, minor) {
        (1, _) => Some(Version::V1),
        (0, m) if m >= 3 => Some(Version::V03),
        _ => None,
    }
}

fn send_params(version: Version, texts: &[String]) -> Value {
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
async fn rpc(endpoint: &Endpoint, method: &str, params: Value) -> Result<Value, AgentError> {
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
    let bytes = read_limited(response, MAX_BODY).await?;
    let status_error = || AgentError {
        kind: kind_of_status(status),
        message: format!(
            "the A2A agent at {} answered {method} with {status}: {}",
            endpoint.url,
            quote(&bytes)
        ),
    };
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

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Data(Value),
    File(String),
}

#[derive(Debug)]
struct Task {
    id: String,
    /// Normalised: `completed`, `input-required`, … for both versions.
    state: String,
    status_parts: Vec<Part>,
    artifact_parts: Vec<Part>,
    last_agent_parts: Vec<Part>,
}

enum Reply {
    Message(Vec<Part>),
    Task(Task),
}

impl Reply {
    /// A SendMessage result: `{task}` / `{message}` (1.0), or the object
    /// itself with its `kind` (0.3).
    fn parse(result: &Value) -> Result<Reply, String> {
        if result["task"].is_object() {
            return Ok(Reply::Task(parse_task(&result["task"])?));
        }
        if result["message"].is_object() {
            return Ok(Reply::Message(parts(&result["message"]["parts"])));
        }
        match result["kind"].as_str() {
            Some("task") => return Ok(Reply::Task(parse_task(result)?)),
            Some("message") => return Ok(Reply::Message(parts(&result["parts"]))),
            _ => {}
        }
        if result["status"].is_object() && result["id"].is_string() {
            return Ok(Reply::Task(parse_task(result)?));
        }
        if result["parts"].is_array() {
            return Ok(Reply::Message(parts(&result["parts"])));
        }
        Err(format!(
            "the A2A agent answered with neither a message nor a task: {}",
            quote(result.to_string().as_bytes())
        ))
    }
}

fn parse_task(t: &Value) -> Result<Task, String> {
    let id = t["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("the A2A agent returned a task without an id")?
        .to_string();
    let raw_state = t["status"]["state"].as_str().unwrap_or("");
    let state = raw_state
        .trim_start_matches("TASK_STATE_")
        .to_ascii_lowercase()
        .replace('_', "-");
    let artifact_parts = t["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| parts(&a["parts"]))
        .collect();
    let last_agent_parts = t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| matches!(m["role"].as_str(), Some("ROLE_AGENT" | "agent")))
        .map(|m| parts(&m["parts"]))
        .unwrap_or_default();
    Ok(Task {
        id,
        state,
        status_parts: parts(&t["status"]["message"]["parts"]),
        artifact_parts,
        last_agent_parts,
    })
}

fn parts(list: &Value) -> Vec<Part> {
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        let kind = p["kind"].as_str();
        if kind == Some("text") || (kind.is_none() && p.get("text").is_some()) {
            out.push(Part::Text(p["text"].as_str().unwrap_or("").to_string()));
        } else if kind == Some("data") || (kind.is_none() && p.get("data").is_some()) {
            let mut data = p["data"].clone();
            // A 0.3 agent wraps a non-object value as {"value": …}.
            if p["metadata"]["data_part_compat"] == true {
                data = data["value"].clone();
            }
            out.push(Part::Data(data));
        } else {
            let file = &p["file"];
            let name = [&p["url"], &file["uri"], &p["filename"], &file["name"]]
                .into_iter()
                .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
                .unwrap_or("unnamed file");
            out.push(Part::File(name.to_string()));
        }
    }
    out
}

fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.clone()),
            Part::Data(d) => Some(d.to_string()),
            Part::File(_) => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asks the agent to cancel a task this attempt gave up on (deadline,
/// cancellation), without waiting for the answer.
struct CancelOnDrop<'a> {
    endpoint: &'a Endpoint,
    task_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let id = self.task_id.clone();
        handle.spawn(async move {
            let call = rpc(&endpoint, endpoint.version.cancel(), json!({"id": id}));
            let _ = tokio::time::timeout(Duration::from_secs(10), call).await;
        });
    }
}

async fn wait_for(endpoint: &Endpoint, mut task: Task) -> Result<Vec<Part>, AgentError> {
    let mut guard = CancelOnDrop {
        endpoint,
        task_id: task.id.clone(),
        armed: true,
    };
    let mut delay = FIRST_POLL;
    loop {
        match task.state.as_str() {
            "completed" => {
                guard.armed = false;
                let Task {
                    status_parts,
                    artifact_parts,
                    last_agent_parts,
                    ..
                } = task;
                return Ok([artifact_parts, status_parts, last_agent_parts]
                    .into_iter()
                    .find(|p| !p.is_empty())
                    .unwrap_or_default());
            }
            state @ ("failed" | "rejected" | "canceled" | "cancelled") => {
                guard.armed = false;
                let text = parts_text(&task.status_parts);
                let text = if text.trim().is_empty() {
                    parts_text(&task.last_agent_parts)
                } else {
                    text
                };
                let text = if text.trim().is_empty() {
                    "(the agent gave no reason)".to_string()
                } else {
                    text
                };
                return fail(format!(
                    "the A2A agent's task {} ended {state}: {text}",
                    task.id
                ));
            }
            state @ ("input-required" | "auth-required") => {
                // Left armed: the task waits for an answer that will not come.
                let text = parts_text(&task.status_parts);
                let what = if state == "auth-required" {
                    "authentication"
                } else {
                    "more input"
                };
                let said = if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                };
                return fail(format!(
                    "the A2A agent needs {what} (task {} is {state}){said}. retake sends one message per attempt \
                     and cannot answer an agent's follow-up; give the node everything it needs in its inputs or prompt",
                    task.id
                ));
            }
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
        let result = rpc(endpoint, endpoint.version.get(), json!({"id": task.id})).await?;
        // GetTask returns the Task itself; tolerate a wrapped one.
        let t = if result["task"].is_object() {
            &result["task"]
        } else {
            &result
        };
        task = parse_task(t)?;
    }
}

/// The node's output from the answer's parts.
fn output(parts: Vec<Part>) -> Result<(String, &'static str), String> {
    let has_text = parts.iter().any(|p| matches!(p, Part::Text(_)));
    let data: Vec<&Value> = parts
        .iter()
        .filter_map(|p| if let Part::Data(d) = p { Some(d) } else { None })
        .collect();
    if !has_text && !data.is_empty() {
        let content = match data.as_slice() {
            [one] => one.to_string(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()).to_string(),
        };
        return Ok((content, JSON));
    }
    if !has_text && let Some(Part::File(name)) = parts.first() {
        return Err(format!(
            "the A2A agent answered with files only ({name}); retake keeps text and data parts"
        ));
    }
    Ok((parts_text(&parts), TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_of_both_versions() {
        let v1 = json!({"name": "a", "supportedInterfaces": [
            {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "http://h/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]});
        let e = choose_endpoint(&v1, "http://h/.well-known/agent-card.json").unwrap();
        assert_eq!((e.url.as_str(), e.version), ("http://h/rpc", Version::V1));
        let v03 = json!({"name": "a", "url": "http://h/a2a", "protocolVersion": "0.3.0"});
        let e = choose_endpoint(&v03, "http://h/.well-known/agent.json").unwrap();
        assert_eq!((e.url.as_str(), e.version), ("http://h/a2a", Version::V03));
        let relative =
            json!({"supportedInterfaces": [{"url": "/rpc", "protocolBinding": "JSONRPC"}]});
        assert_eq!(
            choose_endpoint(&relative, "http://h:1/x/.well-known/agent-card.json")
                .unwrap()
                .url,
            "http://h:1/rpc"
        );
        let grpc = json!({"supportedInterfaces": [{"url": "http://h", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]});
        let err = choose_endpoint(&grpc, "http://h/c.json").unwrap_err();
        assert!(
            err.contains("no JSON-RPC interface") && err.contains("GRPC 1.0"),
            "{err}"
        );
    }

    #[test]
    fn replies_of_both_versions() {
        let v1 = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_INPUT_REQUIRED"}}});
        let Reply::Task(t) = Reply::parse(&v1).unwrap() else {
            panic!()
        };
        assert_eq!(t.state, "input-required");
        let v03 = json!({"kind": "task", "id": "t", "status": {"state": "completed"},
            "artifacts": [{"artifactId": "a", "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"value": [1]}, "metadata": {"data_part_compat": true}}]}]});
        let Reply::Task(t) = Reply::parse(&v03).unwrap() else {
            panic!()
        };
        assert_eq!(
            t.artifact_parts,
            vec![Part::Text("hi".into()), Part::Data(json!([1]))]
        );
        let m = json!({"message": {"role": "ROLE_AGENT", "parts": [{"data": {"x": 1}}]}});
        let Reply::Message(p) = Reply::parse(&m).unwrap() else {
            panic!()
        };
        assert_eq!(output(p).unwrap(), (r#"{"x":1}"#.to_string(), JSON));
    }

    #[test]
    fn outputs_keep_text_and_data() {
        let parts = vec![
            Part::Text("a".into()),
            Part::Data(json!({"b": 2})),
            Part::File("f".into()),
        ];
        assert_eq!(output(parts).unwrap(), ("a\n{\"b\":2}".to_string(), TEXT));
        let data = vec![Part::Data(json!(1)), Part::Data(json!("x"))];
        assert_eq!(output(data).unwrap(), ("[1,\"x\"]".to_string(), JSON));
        assert!(
            output(vec![Part::File("http://f".into())])
                .unwrap_err()
                .contains("files only")
        );
        assert_eq!(output(vec![]).unwrap(), (String::new(), TEXT));
    }

    #[test]
    fn agent_urls() {
        assert_eq!(
            agent_url("http://127.0.0.1:8001").unwrap(),
            "http://127.0.0.1:8001"
        );
        assert_eq!(
            agent_url("127.0.0.1:8001").unwrap(),
            "http://127.0.0.1:8001"
        );
        assert_eq!(
            agent_url("agents.example/x").unwrap(),
            "https://agents.example/x"
        );
        assert!(agent_url("ftp://x").is_err());
    }
}
