//! Turning results into what the user sees: the text and JSON forms of
//! every command's result, colours, status names, times and tables.

use owo_colors::OwoColorize;
use prost_types::Timestamp;
use retake::v1::{
    ArtifactOrigin, EventKind, FailureOrigin, NodeExecution, NodeStatus, OutputOverride, Run,
    RunStatus, Usage,
};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};

/// Whether and how to colour text output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// No colours: for JSON, pipes, files and tests.
    pub const PLAIN: Style = Style { color: false };

    /// Colours only on a terminal, never with `--no-color` or NO_COLOR set.
    pub fn detect(no_color: bool) -> Self {
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && !env_off && std::io::stdout().is_terminal(),
        }
    }

    pub fn green(&self, s: &str) -> String {
        if self.color {
            s.green().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn red(&self, s: &str) -> String {
        if self.color {
            s.red().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn yellow(&self, s: &str) -> String {
        if self.color {
            s.yellow().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn cyan(&self, s: &str) -> String {
        if self.color {
            s.cyan().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn dim(&self, s: &str) -> String {
        if self.color {
            s.dimmed().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        if self.color {
            s.bold().to_string()
        } else {
            s.to_string()
        }
    }

    /// A run status word, coloured by outcome.
    pub fn run_status(&self, status: RunStatus) -> String {
        let word = run_status_name(status);
        match status {
            RunStatus::Completed => self.green(word),
            RunStatus::Failed => self.red(word),
            RunStatus::Cancelled | RunStatus::Waiting => self.yellow(word),
            _ => self.cyan(word),
        }
    }

    /// A node status word, coloured by outcome.
    pub fn node_status(&self, status: NodeStatus) -> String {
        let word = node_status_name(status);
        match status {
            NodeStatus::Completed => self.green(word),
            NodeStatus::Reused => self.cyan(word),
            NodeStatus::Failed => self.red(word),
            NodeStatus::Skipped
            | NodeStatus::Cancelled
            | NodeStatus::Waiting
            | NodeStatus::Queued => self.yellow(word),
            _ => word.to_string(),
        }
    }
}

/// A command result that prints as text or as JSON.
pub trait Output {
    /// The text form, ending with a newline unless empty.
    fn text(&self, style: Style) -> String;
    /// The JSON form.
    fn json(&self) -> serde_json::Value;
    /// Process exit code for this result.
    fn exit_code(&self) -> i32 {
        0
    }
    /// Advice printed to stderr after the result (e.g. how to investigate a failure).
    fn hint(&self) -> Option<String> {
        None
    }
}

/// Prints a result to stdout (and its hint to stderr), returning its exit code.
pub fn print_output(out: &dyn Output, json: bool, style: Style) -> i32 {
    let text = if json {
        let mut s = serde_json::to_string_pretty(&out.json()).unwrap_or_default();
        s.push('\n');
        s
    } else {
        out.text(style)
    };
    write_stdout(text.as_bytes());
    if let Some(hint) = out.hint() {
        eprintln!("{hint}");
    }
    out.exit_code()
}

/// Writes to stdout; a closed pipe (`retake runs | head`) ends the process quietly.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `completed`, `failed`, … (lowercase, without the enum prefix).
pub fn run_status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Unspecified => "unknown",
        RunStatus::Pending => "pending",
        RunStatus::Running => "running",
        RunStatus::Waiting => "waiting",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

pub fn node_status_name(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Unspecified => "unknown",
        NodeStatus::Pending => "pending",
        NodeStatus::Running => "running",
        NodeStatus::Waiting => "waiting",
        NodeStatus::Completed => "completed",
        NodeStatus::Failed => "failed",
        NodeStatus::Skipped => "skipped",
        NodeStatus::Reused => "reused",
        NodeStatus::Cancelled => "cancelled",
        NodeStatus::Queued => "queued",
    }
}

pub fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Unspecified => "unknown",
        EventKind::RunStarted => "run_started",
        EventKind::RunStatusChanged => "run_status_changed",
        EventKind::RunFinished => "run_finished",
        EventKind::NodeStarted => "node_started",
        EventKind::NodeOutputDelta => "node_output_delta",
        EventKind::NodeCompleted => "node_completed",
        EventKind::NodeFailed => "node_failed",
        EventKind::NodeSkipped => "node_skipped",
        EventKind::NodeReused => "node_reused",
        EventKind::WaitStarted => "wait_started",
        EventKind::WaitResolved => "wait_resolved",
        EventKind::NodeRetrying => "node_retrying",
        EventKind::NodeCancelled => "node_cancelled",
        EventKind::NodeQueued => "node_queued",
        EventKind::NodeProgress => "node_progress",
    }
}

/// `agent`, `timeout`, … (`unknown` for an origin newer than this list).
pub fn failure_origin_name(origin: FailureOrigin) -> &'static str {
    // By name, so that an origin added to the contract needs no change here
    // to compile, only to get its word.
    match origin.as_str_name().strip_prefix("FAILURE_ORIGIN_") {
        Some("AGENT") => "agent",
        Some("TIMEOUT") => "timeout",
        Some("CANCELLED") => "cancelled",
        Some("DRIFT") => "drift",
        Some("INTERNAL") => "internal",
        Some("INTERRUPTED") => "interrupted",
        _ => "unknown",
    }
}

pub fn artifact_origin_name(origin: ArtifactOrigin) -> &'static str {
    match origin {
        ArtifactOrigin::Unspecified => "unknown",
        ArtifactOrigin::Executed => "executed",
        ArtifactOrigin::Reused => "reused",
        ArtifactOrigin::Override => "override",
        ArtifactOrigin::Human => "human",
    }
}

/// What the server puts in a node's `model` when a replay gave the node's
/// outputs instead of running it.
pub const OVERRIDE_MODEL: &str = "override";

/// The message of the `node_completed` event of an overridden node.
pub const OVERRIDDEN_MESSAGE: &str = "output overridden";

/// The overrides a replay run was given, by node id, in the order given.
pub fn overrides_by_node(run: &Run) -> HashMap<String, Vec<OutputOverride>> {
    let mut by_node: HashMap<String, Vec<OutputOverride>> = HashMap::new();
    for o in run.replay.iter().flat_map(|r| r.overrides.iter()) {
        by_node
            .entry(o.selector.clone())
            .or_default()
            .push(o.clone());
    }
    by_node
}

/// Whether `node` did not run because the replay gave its outputs: the
/// replay lists overrides for it, or (for a record without them) its model
/// says so.
pub fn is_overridden(node: &NodeExecution, overrides: &[OutputOverride]) -> bool {
    node.status() == NodeStatus::Completed
        && (!overrides.is_empty() || (node.model == OVERRIDE_MODEL && node.attempt_count == 0))
}

/// Where an overridden output's value came from: `result from @notes.txt`
/// for a file, `result = "rejected"` for a value given as is (cut to 40
/// characters).
pub fn override_origin(o: &OutputOverride) -> String {
    let output = if o.output.is_empty() {
        "output"
    } else {
        o.output.as_str()
    };
    if o.source.is_empty() {
        format!("{output} = {:?}", truncate(&o.value, 40))
    } else {
        format!("{output} from {}", o.source)
    }
}

/// Every override of a node, as `override_origin` says them, joined.
pub fn override_origins(overrides: &[OutputOverride]) -> String {
    overrides
        .iter()
        .map(override_origin)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s`, or None for the empty string by which a message leaves a field unset.
pub fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `s` as JSON, null for an unset (empty) field.
pub fn empty_null(s: &str) -> serde_json::Value {
    if s.is_empty() {
        serde_json::Value::Null
    } else {
        s.into()
    }
}

/// Tokens and cost as JSON.
pub fn usage_json(u: &Usage) -> serde_json::Value {
    serde_json::json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cost_usd": u.cost_usd,
    })
}

/// Whether a JSON field of a record holds anything to show: it is set
/// and is neither `{}` nor `null`.
pub fn has_json(s: &str) -> bool {
    !s.is_empty() && s != "{}" && s != "null"
}

/// True once a run can no longer change.
pub fn is_finished(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// RFC 3339 (UTC), or None for an unset timestamp.
pub fn rfc3339(ts: Option<&Timestamp>) -> Option<String> {
    ts.filter(|t| t.seconds != 0 || t.nanos != 0)
        .map(|t| t.to_string())
}

/// `2026-03-09 14:32:10` (UTC), or `-`.
pub fn short_time(ts: Option<&Timestamp>) -> String {
    match rfc3339(ts) {
        Some(s) if s.len() >= 19 => s[..19].replace('T', " "),
        Some(s) => s,
        None => "-".to_string(),
    }
}

/// Milliseconds between two timestamps; when `end` is unset, until now.
pub fn elapsed_ms(start: Option<&Timestamp>, end: Option<&Timestamp>) -> Option<i64> {
    let start = start.filter(|t| t.seconds != 0 || t.nanos != 0)?;
    let end_ms = match end.filter(|t| t.seconds != 0 || t.nanos != 0) {
        Some(e) => e.seconds * 1000 + i64::from(e.nanos) / 1_000_000,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            now.as_millis() as i64
        }
    };
    Some((end_ms - (start.seconds * 1000 + i64::from(start.nanos) / 1_000_000)).max(0))
}

/// `12 ms`, `1.4 s`, `2m 03s`, `1h 02m`.
pub fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// `512 B`, `3.2 KiB`, `1.0 MiB`.
pub fn bytes(n: i64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
    }
}

/// Shortens `s` to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let kept: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Characters a terminal shows for `s`, ignoring ANSI colour codes.
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in s.chars() {
        if in_escape {
            if c.is_ascii_alphabetic() {
                in_escape = false;
            }
        } else if c == '\x1b' {
            in_escape = true;
        } else {
            width += 1;
        }
    }
    width
}

/// Left-aligned columns separated by two spaces; the header is bold.
pub fn table(style: Style, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(visible_width(cell));
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(visible_width(cell)) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    let header_cells = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let padded = if i + 1 < header.len() {
                format!("{h:<w$}", w = widths[i])
            } else {
                h.to_string()
            };
            style.bold(&padded)
        })
        .collect::<Vec<_>>();
    // Header cells are already padded, so pad them by their own width.
    let last = header_cells.len().saturating_sub(1);
    for (i, cell) in header_cells.iter().enumerate() {
        out.push_str(cell);
        if i < last {
            out.push_str("  ");
        }
    }
    out.push('\n');
    for row in rows {
        line(row.clone(), &mut out);
    }
    out
}

/// Left-aligned columns separated by two spaces, without a header; empty
/// trailing cells leave no trailing spaces.
pub fn rows(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let last = row.iter().rposition(|c| !c.is_empty()).unwrap_or(0);
        for (i, cell) in row.iter().enumerate().take(last + 1) {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i].saturating_sub(visible_width(cell)) + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// Indents every line of `text` by `prefix`.
pub fn indent(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(1400), "1.4 s");
        assert_eq!(duration(123_000), "2m 03s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let ts = Timestamp {
            seconds: 1_773_066_730,
            nanos: 123_456_000,
        };
        assert_eq!(rfc3339(Some(&ts)).unwrap(), "2026-03-09T14:32:10.123456Z");
        assert_eq!(short_time(Some(&ts)), "2026-03-09 14:32:10");
        assert_eq!(rfc3339(Some(&Timestamp::default())), None);
        assert_eq!(rfc3339(None), None);
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            Style::PLAIN,
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz    w\n");
    }
}
