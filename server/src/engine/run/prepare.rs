//! Preparing a node whose dependencies are done: its `when` condition
//! evaluated, its inputs and prompt rendered from variables and upstream
//! outputs, its config resolved. What the driver reports to the state
//! machine comes from here; nothing is written.

use super::super::agents::{self, AgentCall, OutputRef};
use super::super::config;
use super::super::template::{self, Ref, Resolved};
use super::super::waits::WaitKind;
use super::super::workflow::Node;
use crate::settings::EnvPolicy;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Outputs of the nodes a node depends on or references, by node id.
pub type Upstream = Vec<(String, Arc<Vec<OutputRef>>)>;

/// A node ready for its agent.
pub struct AgentNode {
    /// Everything but the attempt number and the delta channel, which each
    /// attempt sets.
    pub call: AgentCall,
    /// Secret values the config resolved to, cut from every error message.
    pub secrets: Vec<String>,
}

pub enum PreparedNode {
    Agent(AgentNode),
    Wait {
        prompt: String,
        context: String,
    },
    ConditionFalse(String),
    /// It cannot run as written; the error is the node's.
    Invalid(String),
}

/// What a prepared node shows on its record, however it goes on.
#[derive(Default)]
pub struct Rendered {
    pub inputs_json: Option<String>,
    pub prompt: Option<String>,
    pub input_artifacts: Vec<String>,
}

/// Prepares `node` to run as `agent` with the run's `variables` and the
/// outputs it uses.
pub fn prepare(
    node: &Node,
    agent: &str,
    variables: &BTreeMap<String, String>,
    upstream: Upstream,
    env_policy: Option<&EnvPolicy>,
) -> (PreparedNode, Rendered) {
    let mut rendered = Rendered {
        input_artifacts: input_artifacts(&upstream),
        ..Default::default()
    };
    if let Some(cond) = &node.when {
        let mut resolve = resolver(variables, &upstream);
        let left = template::render_text(&cond.left, &mut resolve).unwrap_or_default();
        let right = template::render_text(&cond.right, &mut resolve).unwrap_or_default();
        if !cond.holds(&left, &right) {
            let why = format!(
                "skipped: condition `{}` was false ('{}' vs '{}')",
                cond.raw,
                truncate(&left, 80),
                truncate(&right, 80)
            );
            return (PreparedNode::ConditionFalse(why), rendered);
        }
    }
    {
        let mut resolve = resolver(variables, &upstream);
        if let Some(inputs) = &node.inputs {
            let mut out = String::new();
            if let Err(e) = template::render_json(inputs, &mut resolve, &mut out) {
                return (PreparedNode::Invalid(e), rendered);
            }
            rendered.inputs_json = Some(out);
        }
        if let Some(p) = &node.system_prompt {
            match template::render_text(p, &mut resolve) {
                Ok(p) => rendered.prompt = Some(p),
                Err(e) => return (PreparedNode::Invalid(e), rendered),
            }
        }
    }
    // The agent sees the outputs of its direct dependencies; referenced
    // ones reach it through the rendered templates.
    let direct: Upstream = upstream
        .into_iter()
        .filter(|(id, _)| node.depends_on.contains(id))
        .collect();
    let mut call = AgentCall {
        node_id: node.id.clone(),
        agent: agent.to_string(),
        inputs_json: rendered.inputs_json.clone(),
        upstream: direct,
        prompt: rendered.prompt.clone(),
        config: Map::new(),
        attempt: 0,
        deltas: mpsc::unbounded_channel().0,
    };
    if let Some(kind) = WaitKind::of(agent) {
        let context = call
            .inputs_json
            .take()
            .unwrap_or_else(|| agents::echo_document(&call));
        let prompt = rendered
            .prompt
            .clone()
            .unwrap_or_else(|| kind.default_prompt().to_string());
        let wait = PreparedNode::Wait { prompt, context };
        return (wait, rendered);
    }
    let resolved = config::resolve(agent, &node.config, variables, env_policy);
    if let Some(e) = resolved.error {
        return (PreparedNode::Invalid(e), rendered);
    }
    call.config = resolved.config;
    let node = AgentNode {
        call,
        secrets: resolved.secrets,
    };
    (PreparedNode::Agent(node), rendered)
}

fn input_artifacts(upstream: &Upstream) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (_, outs) in upstream {
        for o in outs.iter() {
            if !ids.contains(&o.artifact_id) {
                ids.push(o.artifact_id.clone());
            }
        }
    }
    ids
}

/// Resolves references for rendering: variables and upstream outputs.
fn resolver<'a>(
    variables: &'a BTreeMap<String, String>,
    upstream: &'a [(String, Arc<Vec<OutputRef>>)],
) -> impl FnMut(&Ref) -> Resolved<'a> + 'a {
    move |r: &Ref| match r {
        Ref::User(name) => variables
            .get(name)
            .map(|v| Resolved::Text(v))
            .unwrap_or(Resolved::Missing),
        Ref::Env(_) => Resolved::Missing,
        Ref::Output { node, output } => upstream
            .iter()
            .find(|(id, _)| id == node)
            .and_then(|(_, outs)| outs.iter().find(|o| &o.name == output))
            .map(|o| {
                if o.media_type == agents::JSON {
                    Resolved::Json(&o.content)
                } else {
                    Resolved::Text(&o.content)
                }
            })
            .unwrap_or(Resolved::Missing),
    }
}

/// Splits an agent's output over the node's declared outputs. With one
/// output it is the whole content; with several, a JSON object carrying
/// every output name is split by key, anything else goes to each output.
pub fn split_outputs(
    node: &Node,
    out: &agents::AgentOutput,
) -> Vec<(String, String, &'static str)> {
    if node.outputs.len() == 1 {
        return vec![(node.outputs[0].clone(), out.content.clone(), out.media_type)];
    }
    if out.media_type == agents::JSON
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&out.content)
        && node.outputs.iter().all(|o| map.contains_key(o))
    {
        return node
            .outputs
            .iter()
            .map(|o| match &map[o] {
                Value::String(s) => (o.clone(), s.clone(), agents::TEXT),
                other => (o.clone(), other.to_string(), agents::JSON),
            })
            .collect();
    }
    node.outputs
        .iter()
        .map(|o| (o.clone(), out.content.clone(), out.media_type))
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
