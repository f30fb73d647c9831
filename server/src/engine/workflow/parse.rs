//! YAML or JSON text to a validated `Workflow`. Every problem is
//! collected at once, each with its node id and, where it can be found,
//! its line; the workflow is built only when there are none.

use super::graph::check_graph;
use super::guard::{check_expansion, check_nesting};
use super::node::parse_node;
use super::{Backoff, Issue, LoadOptions, Loaded, Node, RetryPolicy, Workflow};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

const TOP_KEYS: &[&str] = &["name", "description", "defaults", "nodes"];

/// Loads a workflow: `files` holds the contents of its `file://` prompts,
/// `variables` the run's `${user.*}` values.
pub fn load(
    text: &str,
    files: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
    opts: LoadOptions,
) -> Loaded {
    let mut out = Loaded::default();
    if let Err(issue) = check_nesting(text).and_then(|()| check_expansion(text)) {
        out.errors.push(issue);
        return out;
    }
    // Through serde_yaml's own Value first: it rejects duplicate keys.
    let doc = serde_yaml::from_str::<serde_yaml::Value>(text).and_then(|yaml| {
        serde_json::to_value(yaml)
            .map_err(|e| <serde_yaml::Error as serde::de::Error>::custom(e.to_string()))
    });
    let doc: Value = match doc {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            out.errors.push(Issue {
                node_id: None,
                line,
                message: format!("not valid YAML or JSON: {e}"),
            });
            return out;
        }
    };
    let Value::Object(top) = doc else {
        out.errors.push(Issue {
            node_id: None,
            line: 1,
            message: "a workflow must be a mapping with `name` and `nodes`".into(),
        });
        return out;
    };
    let lines = LineIndex::new(text);
    let mut v = Validator {
        out: &mut out,
        lines: &lines,
    };

    for key in top.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            v.warn(None, format!("unknown key '{key}' is ignored"));
        }
    }
    let name = match top.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            v.error(None, "`name` must be a non-empty string".into());
            String::new()
        }
        None => {
            v.error(None, "`name` is required".into());
            String::new()
        }
    };
    v.out.name = name.clone();
    let description = top
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let defaults = Defaults::parse(top.get("defaults"), &mut v);

    let raw_nodes = match top.get("nodes") {
        Some(Value::Object(map)) if !map.is_empty() => map.clone(),
        Some(Value::Object(_)) => {
            v.error(
                None,
                "`nodes` is empty: a workflow needs at least one node".into(),
            );
            Map::new()
        }
        Some(_) => {
            v.error(None, "`nodes` must be a mapping of node id to node".into());
            Map::new()
        }
        None => {
            v.error(None, "`nodes` is required".into());
            Map::new()
        }
    };
    v.out.node_count = raw_nodes.len();
    if opts.max_nodes > 0 && raw_nodes.len() > opts.max_nodes {
        v.error(
            None,
            format!(
                "the workflow has {} nodes; the limit is {}",
                raw_nodes.len(),
                opts.max_nodes
            ),
        );
        return out;
    }

    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for (id, raw) in &raw_nodes {
        if let Some(node) = parse_node(id, raw, &defaults, files, variables, &opts, &mut v) {
            nodes.push(node);
        }
    }
    if nodes.len() != raw_nodes.len() {
        // A node that is not even a mapping leaves no graph to check.
        return out;
    }
    let Some(order) = check_graph(&nodes, &mut v) else {
        return out;
    };
    if !out.errors.is_empty() {
        return out;
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let nodes: Vec<Node> = order
        .into_iter()
        .map(|i| slots[i].take().expect("each node once"))
        .collect();
    let index = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.clone(), i))
        .collect();
    out.workflow = Some(Workflow {
        name,
        description,
        nodes,
        index,
    });
    out
}

pub(super) struct Validator<'a> {
    pub(super) out: &'a mut Loaded,
    pub(super) lines: &'a LineIndex,
}

impl Validator<'_> {
    pub(super) fn error(&mut self, node: Option<&str>, message: String) {
        let line = node.map(|n| self.lines.node_line(n)).unwrap_or(0);
        self.out.errors.push(Issue {
            node_id: node.map(str::to_string),
            line,
            message,
        });
    }
    pub(super) fn warn(&mut self, node: Option<&str>, message: String) {
        let line = node.map(|n| self.lines.node_line(n)).unwrap_or(0);
        self.out.warnings.push(Issue {
            node_id: node.map(str::to_string),
            line,
            message,
        });
    }
}

#[derive(Default)]
pub(super) struct Defaults {
    pub(super) deadline_ms: Option<u64>,
    pub(super) retry: Option<RetryPolicy>,
}

impl Defaults {
    fn parse(value: Option<&Value>, v: &mut Validator) -> Self {
        let mut d = Defaults::default();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, val) in map {
                    match key.as_str() {
                        "deadline_ms" => d.deadline_ms = parse_deadline(val, None, v),
                        "retry_policy" => d.retry = parse_retry(val, None, v),
                        other => v.warn(None, format!("unknown key 'defaults.{other}' is ignored")),
                    }
                }
            }
            Some(_) => v.error(None, "`defaults` must be a mapping".into()),
        }
        d
    }
}

pub(super) fn parse_deadline(val: &Value, node: Option<&str>, v: &mut Validator) -> Option<u64> {
    match val.as_u64() {
        Some(ms) if ms > 0 => Some(ms),
        _ => {
            v.error(
                node,
                format!("`deadline_ms` must be a positive integer, got {val}"),
            );
            None
        }
    }
}

pub(super) fn parse_retry(
    val: &Value,
    node: Option<&str>,
    v: &mut Validator,
) -> Option<RetryPolicy> {
    let Value::Object(map) = val else {
        v.error(
            node,
            "`retry_policy` must be a mapping like {max_retries: 3, backoff: exponential}".into(),
        );
        return None;
    };
    let mut policy = RetryPolicy::declared_base();
    let mut ok = true;
    for (key, val) in map {
        match key.as_str() {
            "max_retries" => match val.as_u64() {
                Some(n) if (1..=100).contains(&n) => policy.max_retries = n as u32,
                _ => {
                    v.error(node, format!("`retry_policy.max_retries` (total attempts) must be an integer from 1 to 100, got {val}"));
                    ok = false;
                }
            },
            "backoff" => match val.as_str() {
                Some("exponential") => policy.backoff = Backoff::Exponential,
                Some("fixed") => policy.backoff = Backoff::Fixed,
                _ => {
                    v.error(
                        node,
                        format!("`retry_policy.backoff` must be exponential or fixed, got {val}"),
                    );
                    ok = false;
                }
            },
            "initial_delay_ms" | "max_delay_ms" => match val.as_u64() {
                Some(ms) if key == "initial_delay_ms" => policy.initial_delay_ms = ms,
                Some(ms) => policy.max_delay_ms = ms,
                None => {
                    v.error(
                        node,
                        format!("`retry_policy.{key}` must be a non-negative integer, got {val}"),
                    );
                    ok = false;
                }
            },
            other => v.warn(
                node,
                format!("unknown key 'retry_policy.{other}' is ignored"),
            ),
        }
    }
    ok.then_some(policy)
}

pub(super) fn string_list(val: &Value) -> Option<Vec<String>> {
    match val {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// Finds the line where each node is declared, for error messages.
pub(super) struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut lines = HashMap::new();
        let mut in_nodes = false;
        let mut node_indent: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let key = trimmed
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
            if !in_nodes {
                if key.as_deref() == Some("nodes") {
                    in_nodes = true;
                }
                continue;
            }
            if indent == 0 && !trimmed.starts_with('"') && !trimmed.starts_with('}') {
                break;
            }
            let ni = *node_indent.get_or_insert(indent);
            if indent == ni
                && let Some(k) = key
            {
                lines.entry(k).or_insert(n + 1);
            }
        }
        Self { lines }
    }

    pub(super) fn node_line(&self, node: &str) -> usize {
        self.lines.get(node).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::workflow::load_str;

    #[test]
    fn orders_topologically_and_applies_defaults() {
        let l = load_str(
            "name: w\ndefaults: {deadline_ms: 5000, retry_policy: {max_retries: 3, backoff: fixed}}\nnodes:\n  d: {agent: local://echo, outputs: [r], depends_on: [b, c]}\n  b: {agent: local://echo, outputs: [r], depends_on: [a]}\n  c: {agent: local://echo, outputs: [r], depends_on: [a]}\n  a: {agent: local://echo, outputs: [r]}\n",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let w = l.workflow.unwrap();
        let ids: Vec<_> = w.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(w.nodes[0].deadline_ms, 5000);
        assert_eq!(w.nodes[0].retry.max_retries, 3);
        assert_eq!(w.nodes[3].line, 4);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let l = load_str(
            "name: w\nfoo: 1\nnodes:\n  a:\n    agent: local://echo\n    outputs: [r]\n    inputs: {x: \"${b.r}\", y: \"${user.missing}\", z: \"${ghost.r}\"}\n  b:\n    agent: warp://x\n    outputs: []\n  c:\n    agent: local://echo\n    outputs: [r]\n    depends_on: [nope]\n    when: \"${a.r} ~ 3\"\n",
        );
        let text: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        assert!(
            all.contains("line 8: node 'b': unknown agent scheme 'warp://'"),
            "{all}"
        );
        assert!(all.contains("node 'b': `outputs` is empty"), "{all}");
        assert!(
            all.contains("node 'a': inputs uses ${user.missing}"),
            "{all}"
        );
        assert!(all.contains("node 'c': bad `when` condition"), "{all}");
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].message.contains("unknown key 'foo'"));
    }

    #[test]
    fn problems_in_nodes_and_graph_are_reported_together() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: warp://x, outputs: [r]}\n  b: {agent: local://echo, outputs: [r], depends_on: [zzz, a], inputs: {x: \"${a.nope}\"}}\n",
        );
        let all: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            all.iter().any(|e| e.contains("unknown agent scheme")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|e| e.contains("unknown node 'zzz'")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|e| e.contains("unknown output 'nope'")),
            "{all:?}"
        );
    }

    #[test]
    fn rejects_env_outside_config_and_bad_yaml() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r], inputs: {k: \"${env.SECRET}\"}}\n",
        );
        assert!(l.errors[0].message.contains("allowed only inside `config`"));
        let l = load_str("name: w\nnodes:\n  a: [unclosed\n");
        assert!(l.errors[0].message.starts_with("not valid YAML"));
        assert!(l.errors[0].line > 0);
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n  a: {agent: local://echo, outputs: [r]}\n",
        );
        assert!(l.errors[0].message.contains("duplicate"), "{:?}", l.errors);
    }
}
