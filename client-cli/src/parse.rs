//! Parsing what the user typed into request fields: `--var k=v`,
//! `--agent node=uri`, `--override node[.output]=value|@file`, and workflow
//! files together with the `file://` prompts they reference.

use crate::error::{CliError, CliResult};
use retake::v1::{AgentSwap, OutputOverride};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Splits `key=value` at the first `=`; the key must be non-empty.
pub fn parse_var(text: &str) -> CliResult<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::usage(format!(
            "Invalid variable format: {text} (expected key=value)"
        ))),
    }
}

/// All `--var` flags as a map; a later flag wins over an earlier one.
pub fn parse_vars(texts: &[String]) -> CliResult<HashMap<String, String>> {
    texts.iter().map(|t| parse_var(t)).collect()
}

/// `node=uri`, strict: no spaces, both sides non-empty.
pub fn parse_agent_swap(text: &str) -> CliResult<AgentSwap> {
    let bad = || {
        CliError::usage(format!(
            "Invalid agent swap format: {text} (expected node=agent)"
        ))
    };
    let (node, agent) = text.split_once('=').ok_or_else(bad)?;
    if node.is_empty()
        || agent.is_empty()
        || node.contains(char::is_whitespace)
        || agent.contains(char::is_whitespace)
    {
        return Err(bad());
    }
    Ok(AgentSwap {
        node_id: node.to_string(),
        agent: agent.to_string(),
    })
}

/// The text of an override's value: `@path` reads the file (relative to the
/// working directory), `@@text` is the literal `@text`, anything else is itself.
pub fn override_value(value: &str) -> CliResult<String> {
    if let Some(rest) = value.strip_prefix("@@") {
        return Ok(format!("@{rest}"));
    }
    if let Some(path) = value.strip_prefix('@') {
        if path.is_empty() {
            return Err(CliError::usage(
                "Invalid override value: '@' needs a file path (use @@ for a literal '@')",
            ));
        }
        return std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read override file {path}: {e}")));
    }
    Ok(value.to_string())
}

/// `node=value`, `node.output=value`, `node=@file`, or
/// `checkpoint.node=value`. Whether the node and output exist is the
/// server's call: it knows the workflow. `checkpoint.X` is read as node `X`
/// here; `checkpoint_reading` gives the other reading.
pub fn parse_override(text: &str) -> CliResult<OutputOverride> {
    let bad = || {
        CliError::usage(format!(
            "Invalid override format: {text} (expected node=value, node.output=value or node=@file)"
        ))
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(bad());
    }
    let key = key.strip_prefix("checkpoint.").unwrap_or(key);
    let (selector, output) = match key.split_once('.') {
        Some((s, o)) => (s, o),
        None => (key, ""),
    };
    if selector.is_empty() || (key.contains('.') && output.is_empty()) {
        return Err(bad());
    }
    // A value read from a file says so, so the run can say where it came from.
    let source = if value.starts_with('@') && !value.starts_with("@@") {
        value.to_string()
    } else {
        String::new()
    };
    Ok(OutputOverride {
        selector: selector.to_string(),
        output: output.to_string(),
        value: override_value(value)?,
        source,
    })
}

/// The other reading of `checkpoint.X=VALUE`: output `X` of a node named
/// `checkpoint` (`parse_override` reads it as node `X`). Gives `X`; None
/// for any other key.
pub fn checkpoint_reading(text: &str) -> Option<String> {
    let output = override_key(text).strip_prefix("checkpoint.")?;
    if output.is_empty() || output.contains('.') || output.contains(char::is_whitespace) {
        return None;
    }
    Some(output.to_string())
}

/// The key of `--override KEY=VALUE` as typed.
pub fn override_key(text: &str) -> &str {
    text.split_once('=').map_or(text, |(k, _)| k)
}

/// Node id -> its declared outputs, for every node of a workflow document
/// (YAML or JSON). Empty when the document does not parse: the server
/// reports why.
pub fn workflow_outputs(content: &str) -> HashMap<String, Vec<String>> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(content) else {
        return HashMap::new();
    };
    let Some(nodes) = doc.get("nodes").and_then(|n| n.as_mapping()) else {
        return HashMap::new();
    };
    nodes
        .iter()
        .filter_map(|(id, node)| {
            let id = id.as_str()?.to_string();
            let outputs = node
                .get("outputs")
                .and_then(|o| o.as_sequence())
                .map(|o| {
                    o.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Some((id, outputs))
        })
        .collect()
}

/// A workflow file as sent to the server.
#[derive(Debug, Clone, Default)]
pub struct WorkflowSource {
    pub path: PathBuf,
    /// The file's text, sent unchanged.
    pub content: String,
    /// Contents of the `file://PATH` prompts it references, keyed by PATH as written.
    pub files: HashMap<String, String>,
}

/// Reads a workflow and every `file://` system prompt it references
/// (relative to the workflow's directory).
pub fn load_workflow(path: &Path) -> CliResult<WorkflowSource> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::usage(format!("cannot read workflow {}: {e}", path.display())))?;
    let content = String::from_utf8(bytes)
        .map_err(|_| CliError::usage(format!("workflow {} is not valid UTF-8", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = HashMap::new();
    for (node, reference) in file_references(&content) {
        if files.contains_key(&reference) {
            continue;
        }
        let target = base.join(&reference);
        let text = std::fs::read_to_string(&target).map_err(|e| {
            let owner = if node.is_empty() {
                "defaults".to_string()
            } else {
                format!("node '{node}'")
            };
            CliError::usage(format!(
                "cannot read file://{reference} ({owner}): {}: {e}",
                target.display()
            ))
        })?;
        files.insert(reference, text);
    }
    Ok(WorkflowSource {
        path: path.to_path_buf(),
        content,
        files,
    })
}

/// `(node id, PATH)` for every `system_prompt: file://PATH`. A document that
/// does not parse has none: the server reports why it does not parse.
pub fn file_references(content: &str) -> Vec<(String, String)> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(content) else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    let prompt_of = |v: &serde_yaml::Value| -> Option<String> {
        let p = v.get("system_prompt")?.as_str()?;
        p.strip_prefix("file://")
            .filter(|r| !r.is_empty())
            .map(str::to_string)
    };
    if let Some(p) = doc.get("defaults").and_then(prompt_of) {
        refs.push((String::new(), p));
    }
    if let Some(nodes) = doc.get("nodes").and_then(|n| n.as_mapping()) {
        for (id, node) in nodes {
            if let Some(p) = prompt_of(node) {
                let id = match id {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                refs.push((id, p));
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_split_at_the_first_equals() {
        assert_eq!(
            parse_var("topic=a=b").unwrap(),
            ("topic".into(), "a=b".into())
        );
        assert_eq!(parse_var("empty=").unwrap(), ("empty".into(), "".into()));
        let err = parse_var("topic").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid variable format: topic (expected key=value)"
        );
        assert_eq!(err.code, 2);
        assert!(parse_var("=x").is_err());
    }

    #[test]
    fn agent_swaps_are_strict() {
        let s = parse_agent_swap("summarize=llm://anthropic/claude-sonnet-4-20250514").unwrap();
        assert_eq!(s.node_id, "summarize");
        assert_eq!(s.agent, "llm://anthropic/claude-sonnet-4-20250514");
        let err = parse_agent_swap("summarize llm://openai/gpt-4o").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid agent swap format: summarize llm://openai/gpt-4o (expected node=agent)"
        );
        assert_eq!(err.code, 2);
        assert!(parse_agent_swap("summarize=").is_err());
        assert!(parse_agent_swap("=local://echo").is_err());
        assert!(parse_agent_swap("summarize = local://echo").is_err());
    }

    #[test]
    fn overrides_accept_every_spelling() {
        let o = parse_override("fetch=hello").unwrap();
        assert_eq!(
            (o.selector.as_str(), o.output.as_str(), o.value.as_str()),
            ("fetch", "", "hello")
        );
        let o = parse_override("fetch.result=a=b").unwrap();
        assert_eq!(
            (o.selector.as_str(), o.output.as_str(), o.value.as_str()),
            ("fetch", "result", "a=b")
        );
        let o = parse_override("checkpoint.research=Edited notes").unwrap();
        assert_eq!(
            (o.selector.as_str(), o.output.as_str(), o.value.as_str()),
            ("research", "", "Edited notes")
        );
        let o = parse_override("checkpoint.research.notes=x").unwrap();
        assert_eq!(
            (o.selector.as_str(), o.output.as_str()),
            ("research", "notes")
        );
        // Not a node the CLI knows of: the server decides and names the accepted forms.
        let o = parse_override("stage.fetch=x").unwrap();
        assert_eq!((o.selector.as_str(), o.output.as_str()), ("stage", "fetch"));
        let o = parse_override("fetch=@@literal").unwrap();
        assert_eq!((o.value.as_str(), o.source.as_str()), ("@literal", ""));
        let o = parse_override("fetch=").unwrap();
        assert_eq!(o.value, "");
        assert_eq!(parse_override("fetch=hello").unwrap().source, "");
    }

    #[test]
    fn overrides_without_equals_are_rejected() {
        let err = parse_override("fetch").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid override format: fetch (expected node=value, node.output=value or node=@file)"
        );
        assert_eq!(err.code, 2);
        assert!(parse_override("=x").is_err());
        assert!(parse_override("fetch.=x").is_err());
        assert!(parse_override("checkpoint.=x").is_err());
    }

    #[test]
    fn override_values_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value.txt");
        std::fs::write(&path, "from a file\n").unwrap();
        let o = parse_override(&format!("fetch=@{}", path.display())).unwrap();
        assert_eq!(o.value, "from a file\n");
        // The request says where the value came from, as typed.
        assert_eq!(o.source, format!("@{}", path.display()));
        let err = parse_override("fetch=@/definitely/not/here").unwrap_err();
        assert!(
            err.message
                .starts_with("cannot read override file /definitely/not/here"),
            "{}",
            err.message
        );
    }

    #[test]
    fn workflows_carry_their_prompt_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("prompts")).unwrap();
        std::fs::write(dir.path().join("prompts/t.md"), "Extract the key facts.").unwrap();
        let wf = dir.path().join("wf.yaml");
        std::fs::write(
            &wf,
            "name: p\nnodes:\n  a:\n    agent: local://echo\n    system_prompt: file://prompts/t.md\n    outputs: [result]\n  b:\n    agent: local://echo\n    system_prompt: inline\n    outputs: [result]\n",
        )
        .unwrap();
        let src = load_workflow(&wf).unwrap();
        assert_eq!(src.files.len(), 1);
        assert_eq!(src.files["prompts/t.md"], "Extract the key facts.");

        std::fs::write(&wf, "name: p\nnodes:\n  a:\n    agent: local://echo\n    system_prompt: file://missing.md\n")
            .unwrap();
        let err = load_workflow(&wf).unwrap_err();
        assert!(
            err.message.contains("file://missing.md (node 'a')"),
            "{}",
            err.message
        );
        assert_eq!(err.code, 2);
    }

    #[test]
    fn unparsable_workflows_are_left_to_the_server() {
        assert!(file_references("name: [unclosed").is_empty());
        assert!(
            file_references(
                "{\"name\": \"j\", \"nodes\": {\"a\": {\"system_prompt\": \"file://x.md\"}}}"
            )
            .len()
                == 1
        );
    }
}
