//! Property tests for the workflow loader. Whatever text arrives,
//! `workflow::load` returns in bounded time without panicking, and either
//! builds a workflow (topologically ordered, without errors) or reports
//! errors that each carry a message. Valid workflows are accepted in every
//! rendering (block YAML, flow YAML, JSON) with the same definitions.
//!
//! Generators: workflow documents with random node ids (odd UTF-8, empty,
//! very long), random `${...}` references, dependencies (cycles, unknown
//! ids, self), `when`, `retry_policy` and `deadline_ms` values of every
//! type; deep flow and block nesting behind quotes, comments, block
//! scalars and tags; YAML anchors, aliases and alias bombs; huge scalars.
//!
//! Cases per run: 2000 each for random, mangled and odd-number documents,
//! 500 valid workflows (4 renderings each), 200 deep nestings, 120 alias
//! patterns, 24 huge documents and 8 graphs of up to 20,000 nodes: about
//! 25 s on two cores in a debug build. Failures are kept in
//! tests/proptest-regressions/fuzz_workflow.txt.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use retake_server::engine::workflow::{LoadOptions, Loaded, load};
use retake_server::settings::EnvPolicy;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// A load still running after this is taken to be stuck: an input that
/// makes the parser's work blow up (nesting, aliases) runs for minutes or
/// exhausts memory, where any input here loads in well under a second.
/// A watchdog, not a speed target: it is generous enough for a loaded
/// machine and a debug build.
const STUCK_AFTER: Duration = Duration::from_secs(60);

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/fuzz_workflow.txt"
        )))),
        max_shrink_time: 30_000,
        ..Config::default()
    }
}

/// Everything `load` takes besides the text.
#[derive(Clone, Debug, Default)]
struct Inputs {
    files: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
    ignore_missing_variables: bool,
    max_nodes: usize,
    env_policy: bool,
}

impl Inputs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            ignore_missing_variables: self.ignore_missing_variables,
            max_nodes: self.max_nodes,
            env_policy: self.env_policy.then(|| Arc::new(EnvPolicy::default())),
        }
    }
}

/// Loads on a thread with the stack the server gives its blocking pool
/// (2 MiB), and fails if the load panics or is stuck (`STUCK_AFTER`).
fn load_bounded(text: &str, inputs: &Inputs) -> Result<Loaded, TestCaseError> {
    let (text, inputs) = (text.to_string(), inputs.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let loaded = load(&text, &inputs.files, &inputs.variables, inputs.options());
            let _ = tx.send(loaded);
        })
        .expect("spawn");
    match rx.recv_timeout(STUCK_AFTER) {
        Ok(done) => {
            worker
                .join()
                .map_err(|_| TestCaseError::fail("load panicked"))?;
            Ok(done)
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "load still running after {STUCK_AFTER:?}"
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(TestCaseError::fail("load panicked"))
        }
    }
}

/// The outcome invariants every load must keep.
fn check_outcome(text: &str, loaded: &Loaded) -> Result<(), TestCaseError> {
    // YAML also breaks lines at CR, NEL, LS and PS, and its end of stream
    // is on a line of its own.
    let lines = text
        .replace("\r\n", "\n")
        .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .count()
        + 1;
    for issue in loaded.errors.iter().chain(&loaded.warnings) {
        prop_assert!(
            !issue.message.trim().is_empty(),
            "an issue without a message"
        );
        prop_assert!(
            issue.line <= lines + 1,
            "line {} of {lines}: {issue}",
            issue.line
        );
        let _ = issue.to_string();
    }
    match &loaded.workflow {
        Some(w) => {
            prop_assert!(loaded.errors.is_empty(), "a workflow with errors");
            prop_assert_eq!(w.nodes.len(), loaded.node_count);
            prop_assert_eq!(&w.name, &loaded.name);
            prop_assert_eq!(w.index.len(), w.nodes.len());
            for (i, node) in w.nodes.iter().enumerate() {
                prop_assert_eq!(w.index[&node.id], i);
                prop_assert!(!node.outputs.is_empty());
                prop_assert!(node.deadline_ms > 0);
                for dep in &node.depends_on {
                    prop_assert!(
                        w.index[dep] < i,
                        "{} runs before its dependency {dep}",
                        node.id
                    );
                }
                let _ = node.definition();
            }
            let _ = w.dependents();
        }
        None => {
            prop_assert!(!loaded.errors.is_empty(), "neither a workflow nor an error");
            let message = loaded.error_message();
            prop_assert!(message.starts_with("Invalid workflow"), "{message}");
        }
    }
    Ok(())
}

fn load_and_check(text: &str, inputs: &Inputs) -> Result<Loaded, TestCaseError> {
    let loaded = load_bounded(text, inputs)?;
    check_outcome(text, &loaded)?;
    Ok(loaded)
}

// ---------------------------------------------------------------------
// Rendering: one JSON value as block YAML, flow YAML or JSON.

#[derive(Clone, Copy, Debug)]
enum Format {
    Json,
    JsonPretty,
    BlockYaml,
    FlowYaml,
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Json),
        Just(Format::JsonPretty),
        Just(Format::BlockYaml),
        Just(Format::FlowYaml),
    ]
}

fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string(value).unwrap(),
        Format::JsonPretty => serde_json::to_string_pretty(value).unwrap(),
        Format::BlockYaml => serde_yaml::to_string(value).unwrap(),
        Format::FlowYaml => {
            let mut out = String::new();
            flow_yaml(value, &mut out);
            out.push('\n');
            out
        }
    }
}

/// Flow-style YAML with plain scalars wherever YAML reads them back as the
/// same string, and JSON quoting elsewhere.
fn flow_yaml(value: &Value, out: &mut String) {
    match value {
        Value::String(s) if is_plain(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow_yaml(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow_yaml(&Value::String(key.clone()), out);
                out.push_str(": ");
                flow_yaml(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

fn is_plain(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "inf", "nan",
    ];
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && !RESERVED.contains(&s)
}

// ---------------------------------------------------------------------
// Generators.

const POOL: &[&str] = &["a", "b", "c", "fetch", "sum-1", "x_y", "n0", "n1"];
const OUTPUTS: &[&str] = &["result", "r", "o", "out"];

fn odd_text() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "a.b",
            "${a.b}",
            "a b",
            "é",
            "\u{0}",
            "\u{feff}x",
            "🦀",
            "a:b",
            "- a",
            "#x",
            "'q'",
            "\"",
            "true",
            "null",
            "1e3",
            "~",
            "<<",
            "&a",
            "*a",
            "\t",
            "\r\n",
            "\u{85}",
            "\u{2028}",
            "[",
            "]]",
            "{",
            "}",
            "\\",
            "!tag",
            "|",
            ">",
            "---",
            "...",
            "%YAML",
            "\u{202e}rtl",
            "x\u{301}",
            "\u{fffe}",
            "\u{10ffff}",
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
        any::<String>(),
    ]
    .boxed()
}

fn node_id() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(POOL).prop_map(String::from),
        2 => "[a-zA-Z0-9_-]{1,12}",
        1 => Just(String::new()),
        2 => odd_text(),
        1 => (1usize..20_000).prop_map(|n| "n".repeat(n)),
        1 => (1usize..2_000).prop_map(|n| "é".repeat(n)),
    ]
    .boxed()
}

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_-]{0,6}",
        1 => prop::sample::select(POOL).prop_map(String::from),
        1 => odd_text(),
    ]
    .boxed()
}

/// A `${...}` reference, well formed or not.
fn reference() -> BoxedStrategy<String> {
    prop_oneof![
        name().prop_map(|n| format!("${{user.{n}}}")),
        name().prop_map(|n| format!("${{env.{n}}}")),
        prop::sample::select(vec!["OPENAI_API_KEY", "RETAKE_SECRET_X", "HOME", "PATH"])
            .prop_map(|n| format!("${{env.{n}}}")),
        (node_id(), prop::sample::select(OUTPUTS)).prop_map(|(n, o)| format!("${{{n}.{o}}}")),
        (name(), name()).prop_map(|(n, o)| format!("${{{n}.{o}}}")),
        prop::sample::select(vec![
            "${",
            "${}",
            "${.}",
            "${a}",
            "${a.b.c}",
            "${ a . r }",
            "${user.}",
            "${.x}",
            "${${a.r}}",
            "$${a.r}",
            "${a.r",
            "}",
            "${user.x-y}",
            "${env.}",
            "${é.x}",
            "${a.\u{0}}",
            "$",
            "{a.r}",
            "${{a.r}}",
            "${user.user.user}",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

fn template() -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![
            2 => "[a-z ]{0,8}",
            2 => reference(),
            1 => odd_text(),
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
    .boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        template().prop_map(Value::from),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z_]{1,8}",
        1 => prop::sample::select(vec![
            "api_key", "token", "x_secret", "authorization", "response", "ms", "times",
            "api_base", "<<", "", "agent", "outputs",
        ])
        .prop_map(String::from),
        1 => odd_text(),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Numbers and non-numbers for `deadline_ms` and the retry fields.
fn odd_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            json!(0), json!(1), json!(-1), json!(100), json!(101), json!(300_000),
            json!(i64::MIN), json!(i64::MAX), json!(u64::MAX), json!(0.5), json!(-0.5),
            json!(1.0), json!(1e300), json!(-1e300), json!("1000"), json!("-1"), json!("abc"),
            json!(true), json!(null), json!([1]), json!({"ms": 1}), json!(""),
        ]),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => json_value(),
    ]
    .boxed()
}

fn agent() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "local://echo", "local://mock", "local://fail", "local://sleep", "human://input",
            "human://approve", "llm://openai/gpt-4o", "llm://ollama/llama3.2",
            "a2a://http://127.0.0.1:1/", "local://nope", "warp://x", "echo", "llm://", "llm://x",
            "llm:///m", "a2a://", "://", "", "local://", "human://nope", "LOCAL://echo",
        ])
        .prop_map(Value::from),
        1 => odd_text().prop_map(Value::from),
        1 => json_value(),
    ]
    .boxed()
}

fn retry_policy() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (
            prop::option::of(odd_number()),
            prop::option::of(prop_oneof![
                prop::sample::select(vec!["exponential", "fixed", "linear", "", "FIXED"])
                    .prop_map(Value::from),
                odd_number(),
            ]),
            prop::option::of(odd_number()),
            prop::option::of(odd_number()),
            prop::option::of((key(), json_value())),
        )
            .prop_map(|(max, backoff, initial, delay, extra)| {
                let mut m = Map::new();
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v);
                    }
                };
                put("max_retries", max);
                put("backoff", backoff);
                put("initial_delay_ms", initial);
                put("max_delay_ms", delay);
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            }),
        1 => json_value(),
    ]
    .boxed()
}

fn when() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (
            template(),
            prop::sample::select(vec![" == ", " != ", "==", " = ", " ~ ", " == == ", "!=", ""]),
            template(),
        )
            .prop_map(|(l, op, r)| Value::from(format!("{l}{op}{r}"))),
        1 => any::<bool>().prop_map(Value::from),
        1 => json_value(),
    ]
    .boxed()
}

fn string_list(item: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::collection::vec(item.clone(), 0..5).prop_map(|v| json!(v)),
        1 => item.prop_map(Value::from),
        1 => json_value(),
    ]
    .boxed()
}

fn node() -> BoxedStrategy<Value> {
    (
        prop::option::of(agent()),
        prop::option::of(string_list(
            prop_oneof![
                4 => prop::sample::select(OUTPUTS).prop_map(String::from),
                1 => odd_text(),
            ]
            .boxed(),
        )),
        prop::option::of(string_list(node_id().boxed())),
        prop::option::of(prop_oneof![
            4 => prop::collection::btree_map(key(), prop_oneof![template().prop_map(Value::from), json_value()], 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => json_value(),
        ]),
        prop::option::of(prop_oneof![
            3 => prop::collection::btree_map(key(), template().prop_map(Value::from), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => json_value(),
        ]),
        (
            prop::option::of(when()),
            prop::option::of(odd_number()),
            prop::option::of(retry_policy()),
            prop::option::of(prop_oneof![
                template().prop_map(Value::from),
                Just(Value::from("file://prompt.md")),
                Just(Value::from("file://missing.md")),
                json_value(),
            ]),
            prop::option::of((key(), json_value())),
        ),
    )
        .prop_map(|(agent, outputs, deps, inputs, config, (when, deadline, retry, prompt, extra))| {
            let mut m = Map::new();
            for (k, v) in [
                ("agent", agent),
                ("outputs", outputs),
                ("depends_on", deps),
                ("inputs", inputs),
                ("config", config),
                ("when", when),
                ("deadline_ms", deadline),
                ("retry_policy", retry),
                ("system_prompt", prompt),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
    .boxed()
}

fn inputs() -> BoxedStrategy<Inputs> {
    (
        prop::collection::btree_map(name(), "[a-z]{0,6}", 0..4),
        any::<bool>(),
        prop::sample::select(vec![0usize, 1, 3, 20_000]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(variables, ignore, max_nodes, env_policy, with_file)| Inputs {
                files: if with_file {
                    [("prompt.md".to_string(), "Be ${user.tone}.".to_string())].into()
                } else {
                    BTreeMap::new()
                },
                variables,
                ignore_missing_variables: ignore,
                max_nodes,
                env_policy,
            },
        )
        .boxed()
}

/// A whole document: usually a mapping with `name` and `nodes`, sometimes
/// anything at all.
fn document() -> BoxedStrategy<Value> {
    let nodes = prop_oneof![
        8 => prop::collection::vec((node_id(), node()), 0..8)
            .prop_map(|nodes| Value::Object(nodes.into_iter().collect())),
        1 => json_value(),
    ];
    let defaults = prop::option::of(prop_oneof![
        3 => (prop::option::of(odd_number()), prop::option::of(retry_policy()), prop::option::of((key(), json_value())))
            .prop_map(|(d, r, extra)| {
                let mut m = Map::new();
                if let Some(d) = d {
                    m.insert("deadline_ms".into(), d);
                }
                if let Some(r) = r {
                    m.insert("retry_policy".into(), r);
                }
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            }),
        1 => json_value(),
    ]);
    let top = (
        prop::option::of(prop_oneof![3 => name().prop_map(Value::from), 1 => json_value()]),
        prop::option::of(json_value()),
        defaults,
        prop::option::of(nodes),
        prop::option::of((key(), json_value())),
    )
        .prop_map(|(name, description, defaults, nodes, extra)| {
            let mut m = Map::new();
            for (k, v) in [
                ("name", name),
                ("description", description),
                ("defaults", defaults),
                ("nodes", nodes),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        });
    prop_oneof![9 => top, 1 => json_value()].boxed()
}

/// A workflow the loader must accept: unique valid ids, dependencies on
/// earlier nodes only, references to outputs of dependencies, variables
/// given, valid agents, deadlines and retry policies; declared in a
/// shuffled order.
#[derive(Clone, Debug)]
struct ValidWorkflow {
    doc: Value,
    variables: BTreeMap<String, String>,
    ids: Vec<String>,
}

fn valid_workflow() -> impl Strategy<Value = ValidWorkflow> {
    (1usize..24)
        .prop_flat_map(|n| {
            (
                prop::collection::btree_set("[a-zA-Z0-9_-]{1,10}", n..=n),
                prop::collection::vec(
                    (
                        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
                        prop::option::of(1u64..=u64::MAX / 2),
                        prop::option::of((1u64..=100, any::<bool>(), 0u64..100_000, 0u64..100_000)),
                        any::<bool>(),
                        "[a-zA-Z0-9 ,.!?{}\\[\\]'\"#:&*|>-]{0,30}",
                        prop::option::of("[a-z_]{1,6}"),
                    ),
                    n..=n,
                ),
                any::<u64>(),
            )
        })
        .prop_map(|(ids, specs, seed)| {
            let ids: Vec<String> = ids.into_iter().collect();
            let mut variables = BTreeMap::new();
            let mut nodes: Vec<(String, Value)> = Vec::new();
            for (i, (id, (deps, deadline, retry, conditional, text, var))) in
                ids.iter().zip(specs).enumerate()
            {
                let deps: BTreeSet<&String> = if i == 0 {
                    BTreeSet::new()
                } else {
                    deps.iter().map(|d| &ids[d.index(i)]).collect()
                };
                let mut inputs = Map::new();
                inputs.insert("text".into(), Value::from(text));
                for (k, d) in deps.iter().enumerate() {
                    inputs.insert(
                        format!("in{k}"),
                        Value::from(format!("from ${{{d}.result}}")),
                    );
                }
                if let Some(var) = &var {
                    variables.insert(var.clone(), format!("value of {var}"));
                    inputs.insert("var".into(), Value::from(format!("${{user.{var}}}")));
                }
                let mut node = json!({
                    "agent": if i % 3 == 2 { "local://mock" } else { "local://echo" },
                    "outputs": ["result", "extra"],
                    "inputs": inputs,
                });
                if !deps.is_empty() {
                    node["depends_on"] = json!(deps);
                    if conditional {
                        let d = deps.iter().next().unwrap();
                        node["when"] = json!(format!("${{{d}.result}} != skip"));
                    }
                }
                if let Some(ms) = deadline {
                    node["deadline_ms"] = json!(ms);
                }
                if let Some((max, fixed, initial, cap)) = retry {
                    node["retry_policy"] = json!({
                        "max_retries": max,
                        "backoff": if fixed { "fixed" } else { "exponential" },
                        "initial_delay_ms": initial,
                        "max_delay_ms": cap,
                    });
                }
                nodes.push((id.clone(), node));
            }
            // Shuffle the declaration order.
            let mut state = seed | 1;
            for i in (1..nodes.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                nodes.swap(i, (state % (i as u64 + 1)) as usize);
            }
            ValidWorkflow {
                doc: json!({
                    "name": "generated",
                    "description": "a generated workflow",
                    "nodes": Value::Object(nodes.into_iter().collect()),
                }),
                variables,
                ids,
            }
        })
}

/// Text that opens something a naive scan could mistake for a quoted
/// string, a comment or a scalar, so that nesting after it looks hidden.
fn trick() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "",
        "q: \"\\\\\"\n",
        "q: '''\n",
        "# \"\n",
        "# '\n",
        "#\u{85}\"\n",
        "# \u{2028}\"\n",
        "q: a \"b\n",
        "q: a 'b\n",
        "q: a\n  \"b\n",
        "q: a\n  'b\n",
        "q: |\n  \"\n",
        "q: >\n  '\n",
        "q: |2\n   \"\n",
        "q: |\n\n  x\n  \"\n",
        "q: !t \"a\"\n",
        "q: !<[[[> x\n",
        "q: &a \"x\"\n",
        "q: [a \"b, c]\n",
        "q: [a\n \"b, c]\n",
        "q: {a: \"b\\\"\", c: d}\n",
        "q: \"a\\\n  b\"\n",
        "q: 'it''s'\n",
        "\"q\": \"\\\\\"\n",
        "q: [\"a\", 'b', \"c\\\\\"]\n",
        "- \"\n",
        "q: a#\"b\n",
        "q: a #\"b\n",
        "q: [a, b] # \"\n",
        "q: \"\"\n",
        "q: ''\n",
        "q: \u{feff}\"\n",
        "q: \"\r\n",
        "q: x\r  \"y\n",
    ])
    .prop_map(String::from)
    .boxed()
}

/// A nested value `levels` deep in flow style, JSON style or block style.
fn nested(levels: usize, style: u8) -> String {
    match style % 5 {
        0 => format!("{}1{}", "[".repeat(levels), "]".repeat(levels)),
        1 => format!("{}1{}", "{a: ".repeat(levels), "}".repeat(levels)),
        2 => format!("{}1{}", "{\"a\":[".repeat(levels), "]}".repeat(levels)),
        3 => format!("{}x", "- ".repeat(levels)),
        _ => {
            let mut s = String::from("\n");
            for i in 0..levels.min(2_000) {
                s.push_str(&" ".repeat(8 + i));
                s.push_str("k:\n");
            }
            s.push_str(&" ".repeat(8 + levels.min(2_000)));
            s.push_str("v\n");
            s
        }
    }
}

// ---------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(2000))]

    /// Random documents in every rendering: no panic, bounded time, a
    /// workflow or errors with messages.
    #[test]
    fn random_documents_load_or_explain(doc in document(), format in format(), inputs in inputs()) {
        let text = render(&doc, format);
        load_and_check(&text, &inputs)?;
    }

    /// Arbitrary text, and valid-looking text with bytes cut, repeated or
    /// inserted.
    #[test]
    fn mangled_text_loads_or_explains(
        doc in document(),
        format in format(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, odd_text()), 0..6),
        raw in prop::option::of(any::<String>()),
    ) {
        let mut text = raw.unwrap_or_else(|| render(&doc, format));
        for (at, kind, piece) in edits {
            let boundaries: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let i = boundaries[at.index(boundaries.len())];
            match kind {
                0 => text.insert_str(i, &piece),
                1 => {
                    let end = boundaries.iter().copied().find(|&b| b > i).unwrap_or(i);
                    text.replace_range(i..end, "");
                }
                2 => {
                    let tail = text[i..].chars().take(8).collect::<String>();
                    text.insert_str(i, &tail.repeat(3));
                }
                _ => text.truncate(i),
            }
        }
        load_and_check(&text, &Inputs::default())?;
    }

    /// Odd scalars as YAML writes them in the numeric fields.
    #[test]
    fn odd_numbers_in_numeric_fields_are_explained(
        raw in prop::collection::vec(
            prop::sample::select(vec![
                "0", "-1", "1", "0x1F", "0o17", "0b1", "1_000", ".inf", "-.inf", ".nan", "1e999",
                "99999999999999999999999999", "-99999999999999999999", "+1", "~", "null", "1.5",
                "'1000'", "\"5\"", "[]", "{}", "true", "2001-12-14", "!!int 3", "!!str 3",
                "!!float 1", "&x 5", "*x", "18446744073709551615", "18446744073709551616",
                "-9223372036854775808", "0.0000001", "1e-999",
            ]),
            5,
        ),
    ) {
        let text = format!(
            "name: w\ndefaults: {{deadline_ms: {}}}\nnodes:\n  a:\n    agent: local://echo\n    outputs: [o]\n    deadline_ms: {}\n    retry_policy: {{max_retries: {}, initial_delay_ms: {}, max_delay_ms: {}}}\n",
            raw[0], raw[1], raw[2], raw[3], raw[4]
        );
        let loaded = load_and_check(&text, &Inputs::default())?;
        if let Some(w) = &loaded.workflow {
            let retry = &w.nodes[0].retry;
            prop_assert!((1..=100).contains(&retry.max_retries));
            let _ = retry.delay_before(u32::MAX);
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Valid workflows are accepted, in topological order, with the same
    /// definitions whichever way they are written.
    #[test]
    fn valid_workflows_are_accepted_in_every_rendering(w in valid_workflow()) {
        let inputs = Inputs { variables: w.variables.clone(), ..Inputs::default() };
        let mut seen: Option<Vec<(String, Value)>> = None;
        for format in [Format::Json, Format::JsonPretty, Format::BlockYaml, Format::FlowYaml] {
            let text = render(&w.doc, format);
            let loaded = load_and_check(&text, &inputs)?;
            prop_assert!(loaded.errors.is_empty(), "{format:?}: {:?}\n{text}", loaded.errors);
            prop_assert!(loaded.warnings.is_empty(), "{format:?}: {:?}", loaded.warnings);
            let workflow = loaded.workflow.unwrap();
            let ids: BTreeSet<&str> = workflow.nodes.iter().map(|n| n.id.as_str()).collect();
            prop_assert_eq!(ids, w.ids.iter().map(String::as_str).collect::<BTreeSet<_>>());
            let mut definitions: Vec<(String, Value)> = workflow
                .nodes
                .iter()
                .map(|n| (n.id.clone(), n.definition()))
                .collect();
            definitions.sort_by(|a, b| a.0.cmp(&b.0));
            match &seen {
                None => seen = Some(definitions),
                Some(first) => prop_assert_eq!(first, &definitions, "{:?} differs", format),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Deep nesting behind every trick is refused or parsed quickly, and
    /// never reaches the parser's recursion limit: the nesting check sees
    /// flow brackets wherever the parser does.
    #[test]
    fn deep_nesting_is_refused_quickly(
        trick in trick(),
        after in trick(),
        levels in prop_oneof![3 => 65usize..400, 1 => 400usize..5_000, 1 => Just(100_000usize)],
        style in 0u8..5,
        wrap in 0u8..3,
    ) {
        let deep = nested(levels, style);
        let body = match wrap {
            0 => format!("  a: {{agent: local://echo, outputs: [o], inputs: {{x: {deep}}}}}\n"),
            1 => format!("  a:\n    agent: local://echo\n    outputs: [o]\n    inputs:\n      x: {deep}\n"),
            _ => format!("  a: {{agent: local://echo, outputs: [o]}}\nq: {deep}\n"),
        };
        let text = format!("name: w\n{trick}nodes:\n{after}{body}");
        let loaded = load_bounded(&text, &Inputs::default())?;
        check_outcome(&text, &loaded)?;
        if style % 5 < 3 {
            for e in &loaded.errors {
                prop_assert!(
                    !e.message.contains("recursion limit exceeded"),
                    "the nesting check missed flow nesting: {}", e
                );
            }
        }
    }

}

proptest! {
    #![proptest_config(config(120))]

    /// Anchors and aliases: reuse is fine, bombs are refused, and neither
    /// takes long.
    #[test]
    fn aliases_and_alias_bombs_stay_bounded(
        width in 1usize..12,
        levels in 1usize..12,
        (base, scalar_len) in prop_oneof![
            (1usize..2_000, 1usize..50),
            (Just(20_000usize), Just(1usize)),
            (1usize..10, 1usize..100_000),
        ],
        uses in prop_oneof![1usize..50, Just(2_000usize)],
        flow in any::<bool>(),
    ) {
        let mut text = String::from("name: w\nnodes:\n  a:\n    agent: local://echo\n    outputs: [o]\n    inputs:\n");
        let item = "l".repeat(scalar_len);
        let list = |items: Vec<String>| {
            if flow {
                format!("[{}]", items.join(", "))
            } else {
                items.iter().map(|i| format!("\n        - {i}")).collect()
            }
        };
        text.push_str(&format!("      l0: &l0 {}\n", list(vec![item; base])));
        for i in 1..levels {
            text.push_str(&format!("      l{i}: &l{i} {}\n", list(vec![format!("*l{}", i - 1); width])));
        }
        text.push_str(&format!("      uses: [{}]\n", vec![format!("*l{}", levels - 1); uses].join(", ")));
        let loaded = load_bounded(&text, &Inputs::default())?;
        check_outcome(&text, &loaded)?;
        let expanded = (base * (scalar_len + 1)) as f64 * (width as f64).powi(levels as i32 - 1) * uses as f64;
        if expanded > 4.0 * text.len() as f64 + 1.1e6 {
            prop_assert!(loaded.workflow.is_none(), "an expansion of {expanded} was accepted");
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Huge scalars, ids and node counts.
    #[test]
    fn huge_documents_load_or_explain(
        id_len in prop_oneof![Just(1usize), 1usize..300_000],
        scalar_len in prop_oneof![Just(0usize), 1usize..1_000_000],
        nodes in prop_oneof![Just(1usize), 1usize..3_000],
        piece in prop::sample::select(vec!["x", "${", "${a.r}", "[", "\"", "é", "\\", "${user.v}"]),
        format in format(),
        bad_id in any::<bool>(),
    ) {
        let mut map = Map::new();
        let big = piece.repeat(scalar_len / piece.len() + 1);
        let long_id = if bad_id { "é".repeat(id_len) } else { "n".repeat(id_len) };
        map.insert(long_id.clone(), json!({
            "agent": "local://echo",
            "outputs": ["o"],
            "inputs": {"x": big},
            "when": format!("{big} == x"),
        }));
        for i in 0..nodes {
            map.insert(format!("n{i}"), json!({
                "agent": "local://echo",
                "outputs": ["o"],
                "depends_on": if i == 0 { json!([long_id]) } else { json!([format!("n{}", i - 1)]) },
                "inputs": {"x": "${n0.o}"},
            }));
        }
        let text = render(&json!({"name": "huge", "nodes": map}), format);
        load_and_check(&text, &Inputs { ignore_missing_variables: true, ..Inputs::default() })?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Graphs as large as the server allows, each node referencing outputs
    /// of far-away ancestors (or of nodes it does not depend on), load in
    /// bounded time.
    #[test]
    fn large_graphs_with_far_references_load_quickly(
        nodes in prop_oneof![Just(20_000usize), 1_000usize..20_000],
        shape in 0u8..3,
        refs in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound.max(1) as u64) as usize
        };
        let mut text = String::from("name: big\nnodes:\n  n0: {agent: local://echo, outputs: [o]}\n");
        for i in 1..nodes {
            let deps: Vec<usize> = match shape {
                0 => vec![i - 1],
                1 => vec![next(i), next(i)],
                _ => vec![i / 2],
            };
            let targets: Vec<String> = (0..refs)
                .map(|k| match k {
                    0 => "${n0.o}".to_string(),
                    _ => format!("${{n{}.o}}", next(i)),
                })
                .collect();
            let deps: Vec<String> = deps.iter().map(|d| format!("n{d}")).collect();
            text.push_str(&format!(
                "  n{i}: {{agent: local://echo, outputs: [o], depends_on: [{}], inputs: {{x: \"{}\"}}}}\n",
                deps.join(", "),
                targets.join(" ")
            ));
        }
        let loaded = load_bounded(&text, &Inputs { max_nodes: 20_000, ..Inputs::default() })?;
        check_outcome(&text, &loaded)?;
        if refs == 1 {
            prop_assert!(loaded.errors.is_empty(), "{:?}", &loaded.errors[..loaded.errors.len().min(3)]);
        }
    }
}

// ---------------------------------------------------------------------
// Regressions found by the properties above.

fn load_plain(text: &str) -> Loaded {
    load_bounded(text, &Inputs::default()).unwrap()
}

fn assert_refused(text: &str) {
    let loaded = load_plain(text);
    assert!(
        loaded
            .errors
            .iter()
            .any(|e| e.message.contains("nested more than")),
        "{:?}",
        loaded
            .errors
            .iter()
            .map(|e| e.message.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
    );
}

/// A quote a naive scan takes as opening a string used to hide any
/// nesting after it, and the parser took minutes over 100,000 levels.
#[test]
fn nesting_after_a_misleading_quote_is_refused() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for prefix in [
        "q: \"\\\\\"\n",
        "# \"\n",
        "q: a \"b\n",
        "q: |\n  \"\n",
        "q: a\n  \"b\n",
    ] {
        assert_refused(&format!(
            "name: w\n{prefix}nodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: {deep}}}}}\n"
        ));
    }
    assert_refused(&format!(
        "name: w\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: [a \"b, {deep}]}}}}\n"
    ));
}

/// Brackets inside quoted, plain and block scalars are text.
#[test]
fn brackets_inside_scalars_are_text() {
    let many = "[".repeat(500);
    for value in [
        format!("\"{many}\""),
        format!("'{many}'"),
        format!("it's {many}"),
        format!("|\n        {many}\n        \"{many}"),
        format!("\"a\\\\\" # {many}"),
    ] {
        let text = format!(
            "name: w\nnodes:\n  a:\n    agent: local://echo\n    outputs: [o]\n    inputs:\n      x: {value}\n"
        );
        let loaded = load_plain(&text);
        assert!(loaded.errors.is_empty(), "{value}: {:?}", loaded.errors);
    }
}

/// One anchor expanded by thousands of aliases used to build every copy:
/// gigabytes from a few hundred kilobytes.
#[test]
fn alias_bombs_are_refused_before_they_expand() {
    for (anchor, uses) in [
        (vec!["x"; 50_000].join(", "), 2_000),
        ("y".repeat(100_000), 5_000),
    ] {
        let text = format!(
            "name: w\nnodes:\n  a:\n    agent: local://echo\n    outputs: [o]\n    inputs:\n      big: &b [{anchor}]\n      uses: [{}]\n",
            vec!["*b"; uses].join(",")
        );
        let loaded = load_plain(&text);
        assert!(
            loaded
                .errors
                .iter()
                .any(|e| e.message.contains("aliases expand it")),
            "{:?}",
            loaded.errors
        );
    }
    // Ordinary reuse of an anchor is fine, a long prompt in many nodes too.
    let text = "name: w\nnodes:\n  a: &n {agent: local://echo, outputs: [o]}\n  b: *n\n  c: *n\n";
    let loaded = load_plain(text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.workflow.unwrap().nodes.len(), 3);
    let mut text = format!(
        "name: w\nnodes:\n  n0: {{agent: local://echo, outputs: [o], system_prompt: &p \"{}\"}}\n",
        "Be brief. ".repeat(200)
    );
    for i in 1..200 {
        text.push_str(&format!(
            "  n{i}: {{agent: local://echo, outputs: [o], system_prompt: *p}}\n"
        ));
    }
    let loaded = load_plain(&text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
}
