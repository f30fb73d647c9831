//! Workflow YAML used by several suites, and writing it to files.

use std::path::{Path, PathBuf};

/// Writes `content` to `dir/name` (making its directories) and returns the
/// path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, content).unwrap();
    path
}

/// A chain n0 -> n1 -> … of `n` `local://sleep` nodes of `ms` each.
pub fn sleep_chain(n: usize, ms: u64) -> String {
    let mut yaml = String::from("name: sleep-chain\nnodes:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  n{i}:\n    agent: local://sleep\n    config: {{ms: {ms}}}\n    outputs: [result]\n"
        ));
        if i > 0 {
            yaml.push_str(&format!("    depends_on: [n{}]\n", i - 1));
        }
    }
    yaml
}

/// A chain n0 -> n1 -> … of `n` `local://echo` nodes. With `inputs` every
/// node echoes `{step: K}`; without, it echoes (nests) its upstream output.
pub fn echo_chain(n: usize, inputs: bool) -> String {
    let mut y = format!(
        "name: echo-chain-{n}{}\nnodes:\n",
        if inputs { "-inputs" } else { "-deps" }
    );
    for k in 0..n {
        y.push_str(&format!(
            "  n{k}:\n    agent: local://echo\n    outputs: [result]\n"
        ));
        if inputs {
            y.push_str(&format!("    inputs: {{step: {k}}}\n"));
        }
        if k > 0 {
            y.push_str(&format!("    depends_on: [n{}]\n", k - 1));
        }
    }
    y
}

/// fetch -> transform -> summarize -> publish, all local agents.
pub const PIPELINE: &str = r#"name: report-pipeline
description: Fetch, transform, summarize, publish
nodes:
  fetch:
    agent: local://echo
    inputs: {topic: "${user.topic}"}
    outputs: [result]
  transform:
    agent: local://mock
    system_prompt: "Extract the key facts."
    inputs: {data: "${fetch.result}"}
    outputs: [result]
    depends_on: [fetch]
    config: {response: "facts v1"}
  summarize:
    agent: local://mock
    inputs: {facts: "${transform.result}"}
    outputs: [result]
    depends_on: [transform]
    config: {response: "summary v1"}
  publish:
    agent: local://echo
    inputs: {report: "${summarize.result}"}
    outputs: [result]
    depends_on: [summarize]
"#;

/// fetch -> transform (fails) -> publish (skipped).
pub const FAILING: &str = r#"name: failing
nodes:
  fetch:
    agent: local://echo
    inputs: {topic: "x"}
    outputs: [result]
  transform:
    agent: local://fail
    config: {message: "boom"}
    inputs: {data: "${fetch.result}"}
    outputs: [result]
    depends_on: [fetch]
  publish:
    agent: local://echo
    inputs: {data: "${transform.result}"}
    outputs: [result]
    depends_on: [transform]
"#;

/// One node that sleeps far longer than any test waits.
pub const SLOW: &str = r#"name: slow
nodes:
  nap:
    agent: local://sleep
    config: {ms: 600000}
    outputs: [result]
  after:
    agent: local://echo
    outputs: [result]
    depends_on: [nap]
"#;
