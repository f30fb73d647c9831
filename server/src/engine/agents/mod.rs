//! Agents execute nodes. The URI scheme picks the implementation; each
//! returns the node's output text and what it cost.

mod local;

use crate::engine::model::Usage;
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

pub async fn execute(call: &AgentCall) -> Result<AgentOutput, String> {
    let (scheme, rest) = call.agent.split_once("://").unwrap_or(("", ""));
    match scheme {
        "local" => local::execute(rest, call).await,
        "llm" | "a2a" | "human" => Err(format!(
            "agent '{}' cannot run: {scheme}:// agents are not available in this build of retake",
            call.agent
        )),
        _ => Err(format!("unknown agent '{}'", call.agent)),
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
