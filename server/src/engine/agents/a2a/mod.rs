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

mod card;
mod reply;
mod rpc;
mod task;

use super::error::AgentError;
use super::{AgentCall, AgentOutput, user_message};
use reply::Reply;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The most of an answer's body we read.
const MAX_BODY: usize = 64 << 20;

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
    let (card_url, card) = card::fetch(&base, &headers).await?;
    let mut endpoint =
        card::choose_endpoint(&card, &card_url).map_err(AgentError::configuration)?;
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
    let params = rpc::send_params(endpoint.version, &texts);
    let result = rpc::call(&endpoint, endpoint.version.send(), params).await?;
    let parts = match Reply::parse(&result)? {
        Reply::Message(parts) => parts,
        Reply::Task(task) => task::wait_for(&endpoint, task).await?,
    };
    let (content, media_type) = reply::output(parts)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
