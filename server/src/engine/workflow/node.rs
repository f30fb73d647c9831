//! One node's entry: its keys, agent, prompt, outputs, dependencies,
//! condition, inputs, config, deadline and retry policy, and where each
//! kind of reference may appear.

use super::parse::{Defaults, Validator, parse_deadline, parse_retry, string_list};
use super::{CompareOp, Condition, DEFAULT_DEADLINE_MS, LoadOptions, Node};
use crate::engine::secrets;
use crate::engine::template::{self, Ref};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const NODE_KEYS: &[&str] = &[
    "agent",
    "system_prompt",
    "inputs",
    "outputs",
    "depends_on",
    "when",
    "config",
    "deadline_ms",
    "retry_policy",
];
#[cfg(not(feature = "fault-injection"))]
const LOCAL_AGENTS: &[&str] = &["echo", "mock", "fail", "sleep"];
#[cfg(feature = "fault-injection")]
const LOCAL_AGENTS: &[&str] = &["echo", "mock", "fail", "sleep", "panic"];
const HUMAN_AGENTS: &[&str] = &["input", "approve"];

/// Checks an agent URI's scheme and form.
pub fn check_agent(agent: &str) -> Result<(), String> {
    let Some((scheme, rest)) = agent.split_once("://") else {
        return Err(format!(
            "agent '{agent}' is not a URI; use local://, llm://, a2a://, human:// or worker://"
        ));
    };
    match scheme {
        "local" if LOCAL_AGENTS.contains(&rest) => Ok(()),
        "local" => Err(format!(
            "unknown local agent '{agent}' (known: {})",
            LOCAL_AGENTS
                .iter()
                .map(|a| format!("local://{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        "human" if HUMAN_AGENTS.contains(&rest) => Ok(()),
        "human" => Err(format!(
            "unknown human agent '{agent}' (known: human://input, human://approve)"
        )),
        "llm" => match rest.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(()),
            _ => Err(format!(
                "agent '{agent}' must look like llm://PROVIDER/MODEL"
            )),
        },
        "a2a" if !rest.is_empty() => Ok(()),
        "a2a" => Err(format!("agent '{agent}' must look like a2a://URL")),
        "worker" => crate::engine::workers::check_agent_name(rest).map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown agent scheme '{other}://' in '{agent}' (known: local://, llm://, a2a://, human://, worker://)"
        )),
    }
}

/// Every `${env.NAME}` in a config value, with the key it stands under.
fn env_refs_by_key(value: &Value, key: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            for seg in template::parse(s).unwrap_or_default() {
                if let template::Segment::Ref(Ref::Env(name)) = seg {
                    out.push((key.to_string(), name));
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| env_refs_by_key(x, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, x)| env_refs_by_key(x, k, out)),
        _ => {}
    }
}

pub(super) fn parse_node(
    id: &str,
    raw: &Value,
    defaults: &Defaults,
    files: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
    opts: &LoadOptions,
    v: &mut Validator,
) -> Option<Node> {
    let node = Some(id);
    if let Some(e) = template::name_error("node ids", id) {
        v.error(node, e);
    }
    if matches!(id, "user" | "env") {
        v.error(
            node,
            format!("'{id}' cannot be a node id: ${{{id}.NAME}} always means a variable, so its outputs could not be referenced"),
        );
    }
    let Value::Object(map) = raw else {
        v.error(
            node,
            "a node must be a mapping with at least `agent` and `outputs`".into(),
        );
        return None;
    };
    for key in map.keys() {
        if !NODE_KEYS.contains(&key.as_str()) {
            v.warn(node, format!("unknown key '{key}' is ignored"));
        }
    }

    let agent = match map.get("agent") {
        Some(Value::String(a)) => {
            if let Err(e) = check_agent(a) {
                v.error(node, e);
            }
            a.clone()
        }
        Some(_) => {
            v.error(node, "`agent` must be a string such as local://echo".into());
            String::new()
        }
        None => {
            v.error(node, "`agent` is required".into());
            String::new()
        }
    };

    let system_prompt = match map.get("system_prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match p.strip_prefix("file://") {
            Some(path) => match files.get(path) {
                Some(content) => Some(content.clone()),
                None => {
                    v.error(
                        node,
                        format!("system_prompt file '{path}' was not provided with the workflow"),
                    );
                    None
                }
            },
            None => Some(p.clone()),
        },
        Some(_) => {
            v.error(node, "`system_prompt` must be a string".into());
            None
        }
    };

    let outputs = match map.get("outputs").map(string_list) {
        Some(Some(list)) if !list.is_empty() => {
            let mut seen = BTreeSet::new();
            for o in &list {
                if !seen.insert(o) {
                    v.error(node, format!("output '{o}' is declared twice"));
                }
                if let Some(e) = template::name_error(&format!("output name '{o}'"), o) {
                    v.error(node, e);
                }
            }
            list
        }
        Some(Some(_)) | None => {
            v.error(
                node,
                "`outputs` is empty: declare at least one output, e.g. outputs: [result]".into(),
            );
            Vec::new()
        }
        Some(None) => {
            v.error(node, "`outputs` must be a list of names".into());
            Vec::new()
        }
    };

    let depends_on = match map.get("depends_on").map(string_list) {
        None => Vec::new(),
        Some(Some(list)) => {
            let mut seen = BTreeSet::new();
            list.into_iter()
                .filter(|d| seen.insert(d.clone()))
                .collect()
        }
        Some(None) => {
            v.error(node, "`depends_on` must be a list of node ids".into());
            Vec::new()
        }
    };

    let when = match map.get("when") {
        None | Some(Value::Null) => None,
        Some(Value::String(w)) => match Condition::parse(w) {
            Ok(c) => Some(c),
            Err(e) => {
                v.error(node, e);
                None
            }
        },
        Some(Value::Bool(b)) => Some(Condition {
            raw: b.to_string(),
            left: b.to_string(),
            op: CompareOp::Eq,
            right: "true".into(),
        }),
        Some(_) => {
            v.error(
                node,
                "`when` must be a string such as \"${review.decision} == approved\"".into(),
            );
            None
        }
    };

    let inputs = match map.get("inputs") {
        None | Some(Value::Null) => None,
        Some(val @ Value::Object(_)) => Some(val.clone()),
        Some(_) => {
            v.error(node, "`inputs` must be a mapping of name to value".into());
            None
        }
    };

    let config = match map.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => {
            v.error(node, "`config` must be a mapping".into());
            Map::new()
        }
    };

    let deadline_ms = map
        .get("deadline_ms")
        .and_then(|d| parse_deadline(d, node, v))
        .or(defaults.deadline_ms)
        .unwrap_or(DEFAULT_DEADLINE_MS);
    let retry = map
        .get("retry_policy")
        .and_then(|r| parse_retry(r, node, v))
        .or_else(|| defaults.retry.clone())
        .unwrap_or_default();

    // References: where each kind is allowed.
    let mut user_vars = BTreeSet::new();
    let mut referenced_nodes = BTreeSet::new();
    let mut check_refs = |place: &str, value: &Value, config_place: bool, v: &mut Validator| {
        let mut refs = Vec::new();
        if let Err(e) = template::refs_in_value(value, &mut refs) {
            v.error(node, format!("{place}: {e}"));
        }
        for r in refs {
            match &r {
                Ref::User(name) => {
                    user_vars.insert(name.clone());
                    if !opts.ignore_missing_variables && !variables.contains_key(name) {
                        v.error(
                            node,
                            format!("{place} uses {r} but no variable '{name}' was given"),
                        );
                        if !v.out.missing_variables.contains(name) {
                            v.out.missing_variables.push(name.clone());
                        }
                    }
                }
                Ref::Env(_) if !config_place => {
                    v.error(
                        node,
                        format!("{place} uses {r}: ${{env.*}} is allowed only inside `config`"),
                    );
                }
                Ref::Env(_) => {}
                Ref::Output { .. } if config_place => {
                    v.error(
                        node,
                        format!("{place} uses {r}: `config` cannot reference node outputs"),
                    );
                }
                Ref::Output { node: n, .. } => {
                    referenced_nodes.insert(n.clone());
                }
            }
        }
    };
    if let Some(inputs) = &inputs {
        check_refs("inputs", inputs, false, v);
    }
    if let Some(p) = &system_prompt {
        check_refs("system_prompt", &Value::String(p.clone()), false, v);
    }
    if let Some(w) = &when {
        check_refs("when", &Value::String(w.raw.clone()), false, v);
    }
    check_refs("config", &Value::Object(config.clone()), true, v);
    let mut env_refs = Vec::new();
    for (key, value) in &config {
        env_refs_by_key(value, key, &mut env_refs);
    }
    for (key, name) in env_refs {
        if !secrets::is_secret_key(&key) {
            v.error(
                node,
                format!(
                    "config.{key} uses ${{env.{name}}}: the server's environment may be read only in credential keys ({})",
                    secrets::secret_keys_described()
                ),
            );
        } else if let Some(policy) = opts.env_policy.as_deref().filter(|p| !p.allows_var(&name)) {
            v.error(
                node,
                format!(
                    "config.{key} uses ${{env.{name}}}, which this server does not let workflows read; it allows {}",
                    policy.allowed_vars.join(", ")
                ),
            );
        }
    }

    // A node with errors still takes part in the graph checks, so every
    // problem of the file is reported at once; the workflow is not built.
    Some(Node {
        id: id.to_string(),
        agent,
        system_prompt,
        inputs,
        outputs,
        depends_on,
        when,
        config,
        deadline_ms,
        retry,
        line: v.lines.node_line(id),
        user_vars,
        referenced_nodes,
    })
}

#[cfg(test)]
mod tests {
    use crate::engine::template;
    use crate::engine::workflow::{LoadOptions, load, load_str};
    use std::collections::BTreeMap;

    #[test]
    fn user_and_env_are_not_node_ids() {
        for id in ["user", "env"] {
            let yaml = format!("name: w\nnodes:\n  {id}: {{agent: local://echo, outputs: [o]}}\n");
            let l = load(
                &yaml,
                &BTreeMap::new(),
                &BTreeMap::new(),
                LoadOptions::default(),
            );
            assert!(
                l.errors
                    .iter()
                    .any(|e| e.to_string().contains("cannot be a node id")),
                "{:?}",
                l.errors
            );
        }
    }

    #[test]
    fn names_are_ascii_and_the_message_says_so() {
        // Letters outside ASCII are refused, and the message says which
        // characters are allowed and which one is not.
        let l = load_str(
            "name: w\nnodes:\n  café: {agent: local://echo, outputs: [r]}\n  b: {agent: local://echo, outputs: [résumé], depends_on: [café]}\n",
        );
        let node_error = l
            .errors
            .iter()
            .find(|e| e.node_id.as_deref() == Some("café"))
            .unwrap_or_else(|| panic!("{:?}", l.errors));
        assert_eq!(
            node_error.message,
            "node ids may contain only ASCII letters (a-z, A-Z), digits, '_' and '-', not 'é'"
        );
        assert!(
            l.errors.iter().any(|e| e.message
                == "output name 'résumé' may contain only ASCII letters (a-z, A-Z), digits, '_' and '-', not 'é'"),
            "{:?}",
            l.errors
        );
        let l = load_str("name: w\nnodes:\n  Ünïcode: {agent: local://echo, outputs: [r]}\n");
        assert!(
            l.errors[0].message.contains("ASCII letters")
                && l.errors[0].message.ends_with("not 'Ü'"),
            "{:?}",
            l.errors
        );
        // What the message allows is accepted.
        let l = load_str(
            "name: w\nnodes:\n  Step_2-b: {agent: local://echo, outputs: [Out_1-x]}\n  c: {agent: local://echo, inputs: {x: \"${Step_2-b.Out_1-x}\"}, outputs: [r], depends_on: [Step_2-b]}\n",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        // References follow the same grammar.
        let err = template::parse("${café.r}").unwrap_err();
        assert!(err.contains("ASCII letters"), "{err}");
    }
}
