//! Workflow files (docs/workflows.md): parsing YAML or JSON into a validated,
//! topologically ordered `Workflow`. Validation collects every problem at
//! once, each with its node id and, where it can be found, its line.

use super::agents::{self, ErrorKind};
use super::template::{self, Ref};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Default per-attempt deadline when neither the node nor `defaults` set one.
pub const DEFAULT_DEADLINE_MS: u64 = 300_000;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Backoff {
    Exponential,
    Fixed,
}

/// When a node's failed attempt is tried again. One budget covers every
/// transient cause: agents do not retry inside an attempt.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RetryPolicy {
    /// Whether the workflow wrote this policy (on the node or in
    /// `defaults`). Not part of the node's definition: an undeclared
    /// policy is described by its values.
    #[serde(skip)]
    pub declared: bool,
    /// Total attempts, the first included (1 means no retry).
    pub max_retries: u32,
    pub backoff: Backoff,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
}

/// The policy of a node whose workflow declares none: it rides out rate
/// limits, overloaded servers and dropped connections with five attempts,
/// 0.5 s apart and doubling, at most 30 s.
impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            declared: false,
            max_retries: 5,
            backoff: Backoff::Exponential,
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// What a written `retry_policy` starts from: the keys it leaves out
    /// keep these values (docs/workflows.md).
    pub fn declared_base() -> Self {
        Self {
            declared: true,
            max_retries: 1,
            backoff: Backoff::Exponential,
            initial_delay_ms: 100,
            max_delay_ms: 10_000,
        }
    }

    /// Whether to try again after a failed attempt, and after how long.
    ///
    /// `failed_attempts` counts the attempts that failed and count against
    /// the budget, this one included (an attempt interrupted by a server
    /// stop does not count). Only transient errors are retried, and a
    /// passed deadline only under a declared policy: a node without one
    /// fails at its deadline. The delay is the backoff's, raised to the
    /// agent's `retry_after` (at most [`agents::MAX_RETRY_AFTER`]) when
    /// the server asked for a longer wait.
    pub fn after_failure(
        &self,
        failed_attempts: u32,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        timed_out: bool,
    ) -> Option<Duration> {
        if kind != ErrorKind::Transient
            || (timed_out && !self.declared)
            || failed_attempts >= self.max_retries
        {
            return None;
        }
        let backoff = self.delay_before(failed_attempts.saturating_add(1));
        Some(match retry_after {
            Some(wait) => backoff.max(wait.min(agents::MAX_RETRY_AFTER)),
            None => backoff,
        })
    }

    /// The backoff delay before attempt `next` (2, 3, …): the initial
    /// delay, doubled for each attempt after the second when exponential,
    /// at most `max_delay_ms`.
    pub fn delay_before(&self, next: u32) -> Duration {
        let ms = match self.backoff {
            Backoff::Fixed => self.initial_delay_ms,
            Backoff::Exponential => self
                .initial_delay_ms
                .saturating_mul(1u64 << next.saturating_sub(2).min(32)),
        };
        Duration::from_millis(ms.min(self.max_delay_ms))
    }
}

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
            .filter(|(k, _)| !super::secrets::is_secret_key(k))
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

    /// Direct dependents of each node, by position.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for dep in &node.depends_on {
                out[self.index[dep]].push(i);
            }
        }
        out
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

/// Options that change what counts as an error.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub ignore_missing_variables: bool,
    pub max_nodes: usize,
    /// The server's rule on `${env.*}` names; None allows any name.
    pub env_policy: Option<std::sync::Arc<crate::settings::EnvPolicy>>,
}

const TOP_KEYS: &[&str] = &["name", "description", "defaults", "nodes"];
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

/// Deepest nesting a workflow may use. Real workflows stay far below it;
/// the YAML parser slows down badly on pathological flow nesting.
const MAX_NESTING: usize = 64;

/// Rejects deeply nested documents before the parser sees them: flow
/// brackets, and block indentation. The parser's work grows with flow
/// depth times document length, so brackets are counted where its scanner
/// reads them as flow: not in quoted, plain or block scalars, tags or
/// comments. The scan follows libyaml's tokenizer (line breaks, comments,
/// multi-line plain scalars, block scalar indentation), since a stray quote
/// it misread could otherwise hide any nesting after it.
fn check_nesting(text: &str) -> Result<(), Issue> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        col: 0,
    };
    let mut depth = 0usize;
    // The scanner's block indentation levels (libyaml's `indent` stack).
    let mut indents: Vec<usize> = Vec::new();
    // Column of the current line's first token after `- ` and `? `: where
    // a block mapping key on this line starts.
    let mut line_key: Option<(usize, usize)> = None;
    let parent = |indents: &Vec<usize>| indents.last().map_or(-1, |&t| t as isize);
    let roll = |indents: &mut Vec<usize>, col: usize| {
        if parent(indents) < col as isize {
            indents.push(col);
        }
    };
    loop {
        // Between tokens: blanks, comments and line breaks.
        loop {
            if s.col == 0 && s.b[s.i..].starts_with("\u{feff}".as_bytes()) {
                s.i += 3;
            }
            while matches!(s.at(0), b' ' | b'\t') {
                s.bump();
            }
            if s.at(0) == b'#' {
                s.skip_line();
            }
            if s.brk(0) == 0 {
                break;
            }
            s.bump();
        }
        if s.end() {
            break;
        }
        let (col, flow) = (s.col, depth > 0);
        if !flow {
            while indents.last().is_some_and(|&t| t > col) {
                indents.pop();
            }
        }
        let first = line_key.is_none_or(|(line, _)| line != s.line);
        let c = s.at(0);
        let indicator = matches!(c, b'-' | b'?') && s.blankz(1);
        if !flow && first && !indicator {
            line_key = Some((s.line, col));
        }
        match c {
            b'%' if col == 0 => s.skip_line(),
            b'-' | b'.' if col == 0 && s.at(1) == c && s.at(2) == c && s.blankz(3) => {
                indents.clear();
                s.bump_n(3);
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Issue {
                        node_id: None,
                        line: s.line,
                        message: format!(
                            "the document is nested more than {MAX_NESTING} levels deep"
                        ),
                    });
                }
                s.bump();
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                s.bump();
            }
            b',' => s.bump(),
            b'-' | b'?' if indicator || (c == b'?' && flow) => {
                if !flow {
                    roll(&mut indents, col);
                }
                s.bump();
            }
            b':' if flow || s.blankz(1) => {
                if !flow {
                    let key = line_key.filter(|&(line, _)| line == s.line);
                    roll(&mut indents, key.map_or(col, |(_, k)| k));
                }
                s.bump();
            }
            b'*' | b'&' => {
                s.bump();
                while matches!(s.at(0), b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'-') {
                    s.bump();
                }
            }
            b'!' if s.at(1) == b'<' => {
                while !s.blankz(0) && s.at(0) != b'>' {
                    s.bump();
                }
                if s.at(0) == b'>' {
                    s.bump();
                }
            }
            b'!' => {
                while !s.blankz(0) && !matches!(s.at(0), b',' | b'[' | b']' | b'{' | b'}') {
                    s.bump();
                }
            }
            b'|' | b'>' if !flow => s.block_scalar(parent(&indents)),
            b'\'' => {
                s.bump();
                while !s.end() {
                    if s.at(0) == b'\'' {
                        s.bump();
                        if s.at(0) != b'\'' {
                            break;
                        }
                    }
                    s.bump();
                }
            }
            b'"' => {
                s.bump();
                while !s.end() && s.at(0) != b'"' {
                    if s.at(0) == b'\\' {
                        s.bump();
                    }
                    s.bump();
                }
                s.bump();
            }
            _ => s.plain_scalar(flow, parent(&indents)),
        }
    }
    for (n, l) in text.lines().enumerate() {
        let indent = l.len() - l.trim_start_matches(' ').len();
        if indent > MAX_NESTING * 8 {
            return Err(Issue {
                node_id: None,
                line: n + 1,
                message: format!(
                    "line is indented {indent} columns; the document is nested too deeply"
                ),
            });
        }
    }
    Ok(())
}

/// A position in a document, counted as the YAML scanner counts: columns
/// in characters, lines broken by CR, LF, CRLF, NEL, LS and PS.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
}

impl Scan<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Length of the line break `k` bytes ahead, 0 if there is none.
    fn brk(&self, k: usize) -> usize {
        match self.b.get(self.i + k..).unwrap_or_default() {
            [b'\r', b'\n', ..] => 2,
            [b'\r' | b'\n', ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    }

    /// A blank, a line break or the end, `k` bytes ahead.
    fn blankz(&self, k: usize) -> bool {
        self.i + k >= self.b.len() || matches!(self.at(k), b' ' | b'\t') || self.brk(k) > 0
    }

    /// Steps over one character or line break.
    fn bump(&mut self) {
        if self.end() {
            return;
        }
        match self.brk(0) {
            0 => {
                self.i += 1;
                while self.i < self.b.len() && self.b[self.i] & 0xC0 == 0x80 {
                    self.i += 1;
                }
                self.col += 1;
            }
            n => {
                self.i += n;
                self.line += 1;
                self.col = 0;
            }
        }
    }

    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    /// Up to the next line break.
    fn skip_line(&mut self) {
        while !self.end() && self.brk(0) == 0 {
            self.bump();
        }
    }

    /// A plain scalar: it ends at `: `, ` #`, a flow indicator inside flow
    /// collections, or a line indented no more than its parent outside them.
    fn plain_scalar(&mut self, flow: bool, parent: isize) {
        loop {
            let marker = self.col == 0
                && matches!(self.at(0), b'-' | b'.')
                && self.at(1) == self.at(0)
                && self.at(2) == self.at(0)
                && self.blankz(3);
            if marker || self.at(0) == b'#' {
                return;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if (c == b':' && self.blankz(1))
                    || (flow && matches!(c, b',' | b'[' | b']' | b'{' | b'}'))
                {
                    return;
                }
                self.bump();
            }
            if self.end() {
                return;
            }
            while matches!(self.at(0), b' ' | b'\t') || self.brk(0) > 0 {
                self.bump();
            }
            if !flow && (self.col as isize) <= parent {
                return;
            }
        }
    }

    /// A `|` or `>` block scalar: its header line, then every line indented
    /// at least as much as its first non-empty line (or as its indentation
    /// indicator says).
    fn block_scalar(&mut self, parent: isize) {
        self.bump();
        let mut increment = 0;
        while matches!(self.at(0), b'+' | b'-' | b'1'..=b'9') {
            if self.at(0).is_ascii_digit() {
                increment = (self.at(0) - b'0') as isize;
            }
            self.bump();
        }
        self.skip_line();
        if self.end() {
            return;
        }
        self.bump();
        let mut indent = match increment {
            0 => 0,
            n if parent >= 0 => parent + n,
            n => n,
        };
        // Leading empty lines, and the first content line's indentation.
        let mut max_indent = 0;
        loop {
            while (indent == 0 || (self.col as isize) < indent) && self.at(0) == b' ' {
                self.bump();
            }
            max_indent = max_indent.max(self.col as isize);
            if self.brk(0) == 0 {
                break;
            }
            self.bump();
        }
        if indent == 0 {
            indent = max_indent.max(parent + 1).max(1);
        }
        while self.col as isize == indent && !self.end() {
            self.skip_line();
            if self.end() {
                return;
            }
            self.bump();
            loop {
                while (self.col as isize) < indent && self.at(0) == b' ' {
                    self.bump();
                }
                if self.brk(0) == 0 {
                    break;
                }
                self.bump();
            }
        }
    }
}

/// How much YAML aliases may grow a document: values plus scalar bytes,
/// per byte of text (a document without aliases stays below 1.5), on top
/// of `EXPANSION_ALLOWANCE`, which leaves room to reuse a long prompt or
/// config in every node.
const MAX_EXPANSION: usize = 2;
const EXPANSION_ALLOWANCE: usize = 1 << 20;

/// Refuses documents that aliases expand far beyond their own size (alias
/// bombs) by counting what they expand to before anything is built. Only
/// a `*` starts an alias, so other documents are not read twice.
fn check_expansion(text: &str) -> Result<(), Issue> {
    if !text.contains('*') {
        return Ok(());
    }
    let used = std::cell::Cell::new(0);
    let count = Count {
        used: &used,
        limit: text.len().saturating_mul(MAX_EXPANSION) + EXPANSION_ALLOWANCE,
    };
    serde::de::DeserializeSeed::deserialize(count, serde_yaml::Deserializer::from_str(text))
        .map_err(|e| Issue {
            node_id: None,
            line: e.location().map(|l| l.line()).unwrap_or(0),
            message: format!("not valid YAML or JSON: {e}"),
        })
}

/// Counts a document's values and scalar bytes, up to a limit.
#[derive(Clone, Copy)]
struct Count<'a> {
    used: &'a std::cell::Cell<usize>,
    limit: usize,
}

impl Count<'_> {
    fn add<E: serde::de::Error>(self, n: usize) -> Result<(), E> {
        self.used.set(self.used.get().saturating_add(n));
        if self.used.get() > self.limit {
            return Err(E::custom(format!(
                "its aliases expand it to more than {} values and bytes",
                self.limit
            )));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.add(1)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        self.add(1 + s.len())
    }
    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<(), E> {
        self.add(1 + b.len())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.add(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.add(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        self.add(1)?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

struct Validator<'a> {
    out: &'a mut Loaded,
    lines: &'a LineIndex,
}

impl Validator<'_> {
    fn error(&mut self, node: Option<&str>, message: String) {
        let line = node.map(|n| self.lines.node_line(n)).unwrap_or(0);
        self.out.errors.push(Issue {
            node_id: node.map(str::to_string),
            line,
            message,
        });
    }
    fn warn(&mut self, node: Option<&str>, message: String) {
        let line = node.map(|n| self.lines.node_line(n)).unwrap_or(0);
        self.out.warnings.push(Issue {
            node_id: node.map(str::to_string),
            line,
            message,
        });
    }
}

#[derive(Default)]
struct Defaults {
    deadline_ms: Option<u64>,
    retry: Option<RetryPolicy>,
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

fn parse_deadline(val: &Value, node: Option<&str>, v: &mut Validator) -> Option<u64> {
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

fn parse_retry(val: &Value, node: Option<&str>, v: &mut Validator) -> Option<RetryPolicy> {
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

fn string_list(val: &Value) -> Option<Vec<String>> {
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

/// Checks an agent URI's scheme and form.
pub fn check_agent(agent: &str) -> Result<(), String> {
    let Some((scheme, rest)) = agent.split_once("://") else {
        return Err(format!(
            "agent '{agent}' is not a URI; use local://, llm://, a2a:// or human://"
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
        other => Err(format!(
            "unknown agent scheme '{other}://' in '{agent}' (known: local://, llm://, a2a://, human://)"
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

fn parse_node(
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
                        v.error(node, format!("{place} uses {r} but no variable '{name}' was given (--var {name}=...)"));
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
        if !super::secrets::is_secret_key(&key) {
            v.error(
                node,
                format!(
                    "config.{key} uses ${{env.{name}}}: the server's environment may be read only in credential keys ({})",
                    super::secrets::secret_keys_described()
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

/// Checks dependencies, references and cycles. Returns the topological
/// order (positions into `nodes`) when the graph is sound.
fn check_graph(nodes: &[Node], v: &mut Validator) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut sound = true;
    for node in nodes {
        for dep in &node.depends_on {
            if dep == &node.id {
                v.error(
                    Some(&node.id),
                    "depends on itself (cycle: {0} -> {0})".replace("{0}", &node.id),
                );
                sound = false;
            } else if !index.contains_key(dep.as_str()) {
                v.error(
                    Some(&node.id),
                    format!("depends_on names unknown node '{dep}'"),
                );
                sound = false;
            }
        }
    }
    // Check the rest of the graph without the broken edges, so their
    // errors do not hide the others.
    let cleaned: Vec<Node>;
    let nodes: &[Node] = if sound {
        nodes
    } else {
        cleaned = nodes
            .iter()
            .map(|n| {
                let mut n = n.clone();
                n.depends_on
                    .retain(|d| d != &n.id && index.contains_key(d.as_str()));
                n
            })
            .collect();
        &cleaned
    };

    // Kahn's algorithm; ties keep declaration order so runs are predictable.
    let mut indegree: Vec<usize> = nodes.iter().map(|n| n.depends_on.len()).collect();
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for dep in &n.depends_on {
            dependents[index[dep.as_str()]].push(i);
        }
    }
    let entries: Vec<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
    if entries.is_empty() {
        v.error(None, "no entry node: every node depends on another".into());
    }
    let mut ready: std::collections::BTreeSet<usize> = entries.into_iter().collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() < nodes.len() {
        for cycle in find_cycles(nodes, &index, &indegree) {
            let first = cycle[0].clone();
            v.error(
                Some(&first),
                format!("dependency cycle: {}", cycle.join(" -> ")),
            );
        }
        return None;
    }

    // Output references: the node must exist, declare the output, and be upstream.
    let refs: Vec<Vec<Ref>> = nodes
        .iter()
        .map(|node| {
            let mut refs = Vec::new();
            for value in [
                node.inputs.as_ref(),
                node.system_prompt.clone().map(Value::String).as_ref(),
                node.when
                    .as_ref()
                    .map(|w| Value::String(w.raw.clone()))
                    .as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                let _ = template::refs_in_value(value, &mut refs);
            }
            refs
        })
        .collect();
    let index_ref = &index;
    let asked: Vec<(usize, usize)> = refs
        .iter()
        .enumerate()
        .flat_map(|(n, refs)| {
            refs.iter().filter_map(move |r| match r {
                Ref::Output { node: target, .. } => index_ref.get(target.as_str()).map(|&t| (n, t)),
                _ => None,
            })
        })
        .collect();
    let upstream = upstream_pairs(nodes, &index, &order, &asked);
    for (n, node) in nodes.iter().enumerate() {
        let mut reported = BTreeSet::new();
        for r in &refs[n] {
            let Ref::Output {
                node: target,
                output,
            } = r
            else {
                continue;
            };
            if !reported.insert(r.clone()) {
                continue;
            }
            let Some(&t) = index.get(target.as_str()) else {
                v.error(
                    Some(&node.id),
                    format!("references unknown node '{target}' in {r}"),
                );
                continue;
            };
            if !nodes[t].outputs.contains(output) {
                v.error(
                    Some(&node.id),
                    format!("references unknown output '{output}' of node '{target}' in {r} (outputs: {})", nodes[t].outputs.join(", ")),
                );
                continue;
            }
            if !upstream.contains(&(n, t)) {
                v.error(
                    Some(&node.id),
                    format!(
                        "references {r} but does not depend on '{target}' (add it to depends_on)"
                    ),
                );
            }
        }
    }
    sound.then_some(order)
}

/// Which of the `(node, target)` pairs have `target` upstream of `node`
/// through depends_on. Each node's ancestors among the targets are bit sets
/// filled in topological order, a few thousand targets at a time, so a
/// large graph costs edges times targets / 64 rather than a walk of the
/// graph for every reference.
fn upstream_pairs(
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    order: &[usize],
    asked: &[(usize, usize)],
) -> BTreeSet<(usize, usize)> {
    const TARGETS_PER_PASS: usize = 4096;
    let mut targets: Vec<usize> = asked.iter().map(|&(_, t)| t).collect();
    targets.sort_unstable();
    targets.dedup();
    let mut bit = vec![usize::MAX; nodes.len()];
    let mut found = BTreeSet::new();
    for chunk in targets.chunks(TARGETS_PER_PASS) {
        for (b, &t) in chunk.iter().enumerate() {
            bit[t] = b;
        }
        let words = chunk.len().div_ceil(64);
        let mut rows = vec![0u64; nodes.len() * words];
        for &i in order {
            for dep in &nodes[i].depends_on {
                let d = index[dep.as_str()];
                for w in 0..words {
                    let inherited = rows[d * words + w];
                    rows[i * words + w] |= inherited;
                }
                if bit[d] != usize::MAX {
                    rows[i * words + bit[d] / 64] |= 1 << (bit[d] % 64);
                }
            }
        }
        for &(n, t) in asked {
            if bit[t] != usize::MAX && rows[n * words + bit[t] / 64] >> (bit[t] % 64) & 1 == 1 {
                found.insert((n, t));
            }
        }
        for &t in chunk {
            bit[t] = usize::MAX;
        }
    }
    found
}

/// Names each cycle among the nodes Kahn's algorithm could not order.
fn find_cycles(
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    indegree: &[usize],
) -> Vec<Vec<String>> {
    let stuck: Vec<bool> = indegree.iter().map(|&d| d > 0).collect();
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on stack, 2 done
    let mut cycles = Vec::new();
    for start in 0..nodes.len() {
        if !stuck[start] || state[start] != 0 {
            continue;
        }
        // Iterative DFS: deep graphs must not exhaust the stack.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (i, ref mut next)) = path.last_mut() {
            let deps = &nodes[i].depends_on;
            if *next < deps.len() {
                let j = index[deps[*next].as_str()];
                *next += 1;
                if !stuck[j] {
                    continue;
                }
                if state[j] == 1 {
                    let from = path.iter().position(|&(k, _)| k == j).unwrap_or(0);
                    // depends_on points upstream; print the cycle in execution order.
                    let mut cycle: Vec<String> = path[from..]
                        .iter()
                        .map(|&(k, _)| nodes[k].id.clone())
                        .collect();
                    cycle.reverse();
                    cycle.push(cycle[0].clone());
                    cycles.push(cycle);
                } else if state[j] == 0 {
                    state[j] = 1;
                    path.push((j, 0));
                }
            } else {
                state[i] = 2;
                path.pop();
            }
        }
    }
    cycles
}

/// Finds the line where each node is declared, for error messages.
struct LineIndex {
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

    fn node_line(&self, node: &str) -> usize {
        self.lines.get(node).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Loaded {
        load(
            text,
            &BTreeMap::new(),
            &BTreeMap::new(),
            LoadOptions::default(),
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_undeclared_policy_rides_out_transient_errors_as_the_provider_loop_did() {
        let p = RetryPolicy::default();
        assert!(!p.declared);
        let t = ErrorKind::Transient;
        let delays: Vec<_> = (1..=5)
            .map(|n| p.after_failure(n, t, None, false))
            .collect();
        assert_eq!(
            delays,
            [
                Some(ms(500)),
                Some(ms(1000)),
                Some(ms(2000)),
                Some(ms(4000)),
                None
            ]
        );
        // A deadline with no policy fails at the deadline.
        assert_eq!(p.after_failure(1, t, None, true), None);
        // What the same request would fail again is never retried.
        for kind in [ErrorKind::Permanent, ErrorKind::Configuration] {
            assert_eq!(p.after_failure(1, kind, None, false), None);
            assert_eq!(p.after_failure(1, kind, Some(ms(10)), false), None);
        }
    }

    #[test]
    fn a_declared_policy_is_used_as_written() {
        let p = RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Fixed,
            initial_delay_ms: 7,
            ..RetryPolicy::declared_base()
        };
        assert!(p.declared);
        let t = ErrorKind::Transient;
        assert_eq!(p.after_failure(1, t, None, false), Some(ms(7)));
        assert_eq!(p.after_failure(2, t, None, false), Some(ms(7)));
        assert_eq!(p.after_failure(3, t, None, false), None, "budget spent");
        assert_eq!(p.after_failure(9, t, None, false), None);
        // A passed deadline is retried under a declared policy.
        assert_eq!(p.after_failure(1, t, None, true), Some(ms(7)));
        assert_eq!(p.after_failure(3, t, None, true), None);
        assert_eq!(p.after_failure(1, ErrorKind::Permanent, None, false), None);
        assert_eq!(
            p.after_failure(1, ErrorKind::Configuration, None, true),
            None
        );
        // One attempt written means one attempt, whatever the error.
        let once = RetryPolicy::declared_base();
        assert_eq!(once.max_retries, 1);
        assert_eq!(once.after_failure(1, t, Some(ms(1)), false), None);
    }

    #[test]
    fn exponential_backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            max_retries: 100,
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            ..RetryPolicy::declared_base()
        };
        let t = ErrorKind::Transient;
        let delays: Vec<_> = [1, 2, 3, 4, 5, 99]
            .into_iter()
            .map(|n| p.after_failure(n, t, None, false).unwrap())
            .collect();
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }

    #[test]
    fn the_servers_wait_raises_the_backoff_never_lowers_it() {
        let p = RetryPolicy::default();
        let t = ErrorKind::Transient;
        // Above the backoff: the server's wait.
        assert_eq!(
            p.after_failure(1, t, Some(Duration::from_secs(3)), false),
            Some(Duration::from_secs(3))
        );
        // Below it: the backoff.
        assert_eq!(p.after_failure(3, t, Some(ms(250)), false), Some(ms(2000)));
        assert_eq!(
            p.after_failure(1, t, Some(Duration::ZERO), false),
            Some(ms(500))
        );
        // Above the policy's own cap, up to the cap on a server's wait.
        let quick = RetryPolicy {
            max_retries: 2,
            initial_delay_ms: 1,
            max_delay_ms: 10,
            ..RetryPolicy::declared_base()
        };
        assert_eq!(
            quick.after_failure(1, t, Some(Duration::from_secs(5)), false),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            quick.after_failure(1, t, Some(Duration::from_secs(3600)), false),
            Some(agents::MAX_RETRY_AFTER)
        );
        // The hint never extends the budget.
        assert_eq!(quick.after_failure(2, t, Some(ms(1)), false), None);
    }

    #[test]
    fn declared_is_not_part_of_the_definition() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n  b: {agent: local://echo, outputs: [r], retry_policy: {max_retries: 5, initial_delay_ms: 500, max_delay_ms: 30000}}\n",
        );
        let w = l.workflow.unwrap();
        let (a, b) = (w.node("a").unwrap(), w.node("b").unwrap());
        assert!(!a.retry.declared && b.retry.declared);
        assert_eq!(
            a.definition()["retry_policy"],
            b.definition()["retry_policy"]
        );
        let l = load_str(
            "name: w\ndefaults: {retry_policy: {backoff: fixed}}\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n",
        );
        let a = &l.workflow.unwrap().nodes[0];
        assert!(a.retry.declared);
        assert_eq!(a.retry.max_retries, 1);
    }

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
    fn names_cycles_and_undeclared_dependencies() {
        let l = load_str(
            "name: w\nnodes:\n  s: {agent: local://echo, outputs: [r]}\n  a: {agent: local://echo, outputs: [r], depends_on: [s, c]}\n  b: {agent: local://echo, outputs: [r], depends_on: [a]}\n  c: {agent: local://echo, outputs: [r], depends_on: [b]}\n",
        );
        assert!(
            l.errors
                .iter()
                .any(|e| e.message.contains("dependency cycle") && e.message.contains("->")),
            "{:?}",
            l.errors
        );
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n  b: {agent: local://echo, outputs: [r], inputs: {x: \"${a.r}\"}}\n  c: {agent: local://echo, outputs: [r], inputs: {x: \"${a.nope}\"}, depends_on: [a]}\n",
        );
        let all: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            all.iter()
                .any(|e| e.contains("node 'b': references ${a.r} but does not depend on 'a'")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|e| e.contains("unknown output 'nope'")),
            "{all:?}"
        );
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

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!(
            "name: d\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: {}{}}}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let l = load_str(&deep);
        assert!(
            l.errors[0].message.contains("nested more than"),
            "{:?}",
            l.errors
        );
        // Brackets inside quoted strings are text.
        let quoted = format!(
            "name: q\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: \"{}\"}}}}\n",
            "[".repeat(500)
        );
        assert!(
            load_str(&quoted).errors.is_empty(),
            "{:?}",
            load_str(&quoted).errors
        );
    }

    #[test]
    fn no_entry_node_is_reported() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r], depends_on: [b]}\n  b: {agent: local://echo, outputs: [r], depends_on: [a]}\n",
        );
        assert!(l.errors.iter().any(|e| e.message.contains("no entry node")));
        assert!(
            l.errors
                .iter()
                .any(|e| e.message.contains("dependency cycle"))
        );
    }

    #[test]
    fn condition_compares_trimmed_unquoted_text() {
        let c = Condition::parse("${review.decision} == approved").unwrap();
        assert!(c.holds(" approved", "approved"));
        assert!(!c.holds("rejected", "approved"));
        let c = Condition::parse("${x.y} != 'no'").unwrap();
        assert!(c.holds("yes", "'no'"));
        assert!(Condition::parse("${x.y} = 3").is_err());
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
