//! What a loaded workflow is made of, and what loading it reports.

use super::RetryPolicy;
use crate::engine::template;
use crate::error::{EngineError, Reason};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Default per-attempt deadline when neither the node nor `defaults` set one.
pub const DEFAULT_DEADLINE_MS: u64 = 300_000;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum CompareOp {
    Eq,
    Ne,
}

/// A `when` condition: `LEFT == RIGHT` or `LEFT != RIGHT`, each side a template.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Condition {
    pub raw: String,
    pub left: String,
    pub op: CompareOp,
    pub right: String,
}

impl Condition {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (op, idx) = match (raw.find("=="), raw.find("!=")) {
            (Some(i), None) => (CompareOp::Eq, i),
            (None, Some(i)) => (CompareOp::Ne, i),
            _ => {
                return Err(format!(
                    "bad `when` condition \"{raw}\": expected LEFT == RIGHT or LEFT != RIGHT"
                ));
            }
        };
        let left = raw[..idx].trim();
        let right = raw[idx + 2..].trim();
        if left.is_empty() || right.is_empty() || right.contains("==") || right.contains("!=") {
            return Err(format!(
                "bad `when` condition \"{raw}\": expected LEFT == RIGHT or LEFT != RIGHT"
            ));
        }
        template::parse(left)?;
        template::parse(right)?;
        Ok(Self {
            raw: raw.to_string(),
            left: left.to_string(),
            op,
            right: right.to_string(),
        })
    }

    /// Compares the rendered sides, ignoring surrounding whitespace and quotes.
    pub fn holds(&self, left: &str, right: &str) -> bool {
        let norm = |s: &str| {
            s.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .trim()
                .to_string()
        };
        (norm(left) == norm(right)) == (self.op == CompareOp::Eq)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: String,
    pub agent: String,
    /// The system prompt as written (a `file://` reference already inlined).
    pub system_prompt: Option<String>,
    pub inputs: Option<Value>,
    pub outputs: Vec<String>,
    pub depends_on: Vec<String>,
    pub when: Option<Condition>,
    pub config: Map<String, Value>,
    pub deadline_ms: u64,
    pub retry: RetryPolicy,
    /// 1-based line of the node in the file; 0 when unknown.
    pub line: usize,
    /// `${user.NAME}` variables this node uses anywhere.
    pub user_vars: BTreeSet<String>,
    /// Nodes whose outputs this node references.
    pub referenced_nodes: BTreeSet<String>,
}

impl Node {
    /// Everything that defines the node's behaviour, as canonical JSON, for
    /// drift detection. Secret config values are left out.
    pub fn definition(&self) -> Value {
        let config: Map<String, Value> = self
            .config
            .iter()
            .filter(|(k, _)| !crate::engine::secrets::is_secret_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::json!({
            "agent": self.agent,
            "system_prompt": self.system_prompt,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "depends_on": self.depends_on,
            "when": self.when.as_ref().map(|w| &w.raw),
            "config": config,
            "deadline_ms": self.deadline_ms,
            "retry_policy": self.retry,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub description: String,
    /// In topological order (ties broken by declaration order).
    pub nodes: Vec<Node>,
    pub index: HashMap<String, usize>,
}

impl Workflow {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }
}

/// A validation finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub node_id: Option<String>,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if let Some(node) = &self.node_id {
            write!(f, "node '{node}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// Result of loading a workflow: the workflow if it is valid, and every
/// error and warning found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub workflow: Option<Workflow>,
    pub name: String,
    pub node_count: usize,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Variables the workflow uses and the request did not give.
    pub missing_variables: Vec<String>,
}

impl Loaded {
    /// All errors in one message, as StartRun and ReplayRun report them.
    pub fn error_message(&self) -> String {
        let mut msg = format!(
            "Invalid workflow{}: {} error{}",
            if self.name.is_empty() {
                String::new()
            } else {
                format!(" '{}'", self.name)
            },
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        );
        for e in &self.errors {
            msg.push_str("\n  ");
            msg.push_str(&e.to_string());
        }
        msg
    }
}

impl Loaded {
    /// The error StartRun and ReplayRun return for an invalid workflow:
    /// every problem in the message, and each as a field violation (the
    /// field's path in the document, the node and the line in words).
    pub fn into_error(self) -> EngineError {
        let mut err = EngineError::invalid_argument(self.error_message())
            .reason(Reason::WorkflowInvalid)
            .meta("errorCount", self.errors.len().to_string());
        if !self.name.is_empty() {
            err = err.meta("workflow", self.name.clone());
        }
        if !self.missing_variables.is_empty() {
            err = err.meta("missingVariables", self.missing_variables.join(","));
        }
        for issue in &self.errors {
            err = err.violation(issue.field(), issue.to_string());
        }
        err
    }
}

/// The document's top-level keys and a node's: a message that starts with
/// one of them (quoted or not) is about that field.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "nodes",
    "defaults",
    "agent",
    "system_prompt",
    "outputs",
    "depends_on",
    "inputs",
    "config",
    "when",
    "deadline_ms",
    "retry_policy",
];

impl Issue {
    /// Where in the document the problem is, as a path: `nodes.ID.FIELD`,
    /// `nodes.ID` or a top-level key; empty for the document as a whole.
    /// Validation messages open with the field they are about.
    pub fn field(&self) -> String {
        let text = self.message.trim_start_matches('`');
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(text.len());
        let path = text[..end].trim_end_matches('.');
        let known = FIELDS.contains(&path.split('.').next().unwrap_or_default());
        match (&self.node_id, known) {
            (Some(node), true) => format!("nodes.{node}.{path}"),
            (Some(node), false) => format!("nodes.{node}"),
            (None, true) => path.to_string(),
            (None, false) => String::new(),
        }
    }
}

/// Options that change what counts as an error.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub ignore_missing_variables: bool,
    pub max_nodes: usize,
    /// The server's rule on `${env.*}` names; None allows any name.
    pub env_policy: Option<std::sync::Arc<crate::settings::EnvPolicy>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_compares_trimmed_unquoted_text() {
        let c = Condition::parse("${review.decision} == approved").unwrap();
        assert!(c.holds(" approved", "approved"));
        assert!(!c.holds("rejected", "approved"));
        let c = Condition::parse("${x.y} != 'no'").unwrap();
        assert!(c.holds("yes", "'no'"));
        assert!(Condition::parse("${x.y} = 3").is_err());
    }
}
