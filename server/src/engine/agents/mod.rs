//! Agents execute nodes. The URI scheme picks the implementation; each
//! returns the node's output text and what it cost.

mod a2a;
mod error;
mod llm;
mod local;
mod retry_after;

pub use error::{AgentError, ErrorKind};
pub use retry_after::MAX_RETRY_AFTER;

pub use llm::PROVIDER_KEY_VARS;

use crate::model::Usage;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An upstream node's outputs as the consumer sees them.
#[derive(Clone, Debug)]
pub struct OutputRef {
    pub artifact_id: String,
    pub name: String,
    pub media_type: String,
    pub content: Arc<str>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain";

/// Everything an agent needs to run one attempt of a node.
pub struct AgentCall {
    pub node_id: String,
    pub agent: String,
    /// The node's inputs rendered to JSON, when it declares inputs.
    pub inputs_json: Option<String>,
    /// Outputs of the direct dependencies, in depends_on order.
    pub upstream: Vec<(String, Arc<Vec<OutputRef>>)>,
    pub prompt: Option<String>,
    /// Config with `${env.*}` and `${user.*}` resolved. Never stored.
    pub config: Map<String, Value>,
    pub attempt: u32,
    /// Streamed output text (LLM tokens) for watchers.
    pub deltas: mpsc::UnboundedSender<String>,
}

/// A successful attempt.
#[derive(Debug, Default)]
pub struct AgentOutput {
    pub content: String,
    pub media_type: &'static str,
    pub model: Option<String>,
    pub usage: Usage,
}

pub async fn execute(call: &AgentCall) -> Result<AgentOutput, AgentError> {
    let (scheme, rest) = call.agent.split_once("://").unwrap_or(("", ""));
    match scheme {
        "local" => local::execute(rest, call).await,
        "llm" => llm::execute(rest, call).await,
        "a2a" => a2a::execute(rest, call).await,
        "human" => Err(AgentError::configuration(format!(
            "agent '{}' cannot run: {scheme}:// agents are not available in this build of retake",
            call.agent
        ))),
        _ => Err(AgentError::configuration(format!(
            "unknown agent '{}'",
            call.agent
        ))),
    }
}

/// Where the credentials in a node's config go when `agent` runs.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialDestination {
    /// Nowhere outside this process (local and human agents).
    Nowhere,
    /// The provider's own default endpoint.
    ProviderDefault,
    /// Any other host, named by the workflow.
    Host(String),
}

pub fn credential_destination(agent: &str, config: &Map<String, Value>) -> CredentialDestination {
    let (scheme, rest) = agent.split_once("://").unwrap_or(("", ""));
    match scheme {
        "llm" => {
            let provider = rest.split('/').next().unwrap_or_default();
            match llm::credential_host(provider, config) {
                None => CredentialDestination::ProviderDefault,
                Some(host) => CredentialDestination::Host(host),
            }
        }
        "a2a" => CredentialDestination::Host(a2a::credential_host(rest)),
        _ => CredentialDestination::Nowhere,
    }
}

/// The host (with a non-default port) of an http(s) URL.
fn url_host(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The HTTP client every remote agent shares (connection pools, TLS
/// sessions). No overall timeout: the node's deadline bounds each attempt,
/// and streamed answers may legitimately take long.
pub(crate) fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("retake/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("the HTTP client's configuration is static")
    })
}

/// Describes a transport error with its causes ("error sending request …:
/// connection refused"), which reqwest's own message leaves out.
pub(crate) fn describe_http_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// The text a remote agent (LLM or A2A) receives as the user's message.
///
/// With inputs, one block per input in declaration order, separated by a
/// blank line: the key, a colon and a newline, then the value — strings as
/// they are, anything else as indented JSON:
///
/// ```text
/// topic:
/// rust async
///
/// facts:
/// {
///   "a": 1
/// }
/// ```
///
/// Without inputs, the same blocks for the upstream outputs, keyed by the
/// node id (`node.output` when that node has several outputs). A node with
/// neither gets an empty text.
pub fn user_message(call: &AgentCall) -> String {
    let mut blocks: Vec<(String, String)> = Vec::new();
    if let Some(inputs) = &call.inputs_json {
        match serde_json::from_str::<Value>(inputs) {
            Ok(Value::Object(map)) => {
                for (k, v) in map {
                    blocks.push((k, readable(&v)));
                }
            }
            Ok(other) => return readable(&other),
            // Too deep to parse: hand over the JSON as it is.
            Err(_) => return inputs.clone(),
        }
    } else {
        for (node, outputs) in &call.upstream {
            let several = outputs.len() > 1;
            for o in outputs.iter() {
                let key = if several {
                    format!("{node}.{}", o.name)
                } else {
                    node.clone()
                };
                let text = if o.media_type == JSON {
                    match serde_json::from_str::<Value>(&o.content) {
                        Ok(v) => readable(&v),
                        Err(_) => o.content.to_string(),
                    }
                } else {
                    o.content.to_string()
                };
                blocks.push((key, text));
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in blocks.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(k);
        out.push_str(":\n");
        out.push_str(v);
    }
    out
}

fn readable(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// The echo document: the rendered inputs, or the upstream outputs keyed
/// by node id when the node declares no inputs. Upstream JSON is embedded
/// without re-parsing, so depth never matters.
pub fn echo_document(call: &AgentCall) -> String {
    if let Some(inputs) = &call.inputs_json {
        return inputs.clone();
    }
    let mut out = String::from("{");
    for (i, (node, outputs)) in call.upstream.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::engine::template::write_json_string(node, &mut out);
        out.push(':');
        if let [only] = outputs.as_slice() {
            embed(only, &mut out);
        } else {
            out.push('{');
            for (j, o) in outputs.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                crate::engine::template::write_json_string(&o.name, &mut out);
                out.push(':');
                embed(o, &mut out);
            }
            out.push('}');
        }
    }
    out.push('}');
    out
}

fn embed(o: &OutputRef, out: &mut String) {
    if o.media_type == JSON {
        out.push_str(&o.content);
    } else {
        crate::engine::template::write_json_string(&o.content, out);
    }
}
