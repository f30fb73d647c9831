//! Following a run's event stream: resuming after the last sequence seen
//! when the connection drops, stopping on Ctrl-C, and showing the events as
//! lines, a progress bar, or JSON lines.

use crate::connect::Transport;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style, event_kind_name, node_status_name, run_status_name};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use retake::v1::run_service_client::RunServiceClient;
use retake::v1::{
    Event, EventKind, GetRunRequest, ListWaitsRequest, NodeStatus, OutputOverride, Run, RunStatus,
    Wait, WaitKind, WatchRunRequest,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// What stops following a run before it ends.
#[derive(Clone, Default)]
pub enum Interrupt {
    /// Nothing: follow to the end.
    #[default]
    Never,
    /// Ctrl-C.
    CtrlC,
    /// A notification (tests, embedding).
    Notify(Arc<tokio::sync::Notify>),
}

impl Interrupt {
    /// Resolves when the interrupt happens.
    pub async fn wait(&self) {
        match self {
            Interrupt::Never => std::future::pending::<()>().await,
            Interrupt::CtrlC => {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await
                }
            }
            Interrupt::Notify(n) => n.notified().await,
        }
    }
}

/// How following ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEnd {
    /// The run finished; the last sequence number seen.
    Finished { last_sequence: i64 },
    /// Interrupted; the run may still be going.
    Interrupted { last_sequence: i64 },
    /// A node started waiting for a human (only when asked to stop there).
    Waiting { last_sequence: i64, node_id: String },
}

/// Receives a run's events as they arrive.
pub trait EventSink: Send {
    /// Called once before the first event with the run as it was then.
    fn on_start(&mut self, _run: &Run) {}
    fn on_event(&mut self, event: &Event);
    /// Whether `on_wait` is wanted: it costs a ListWaits call per wait.
    fn wants_waits(&self) -> bool {
        false
    }
    /// Called after a WAIT_STARTED event with the wait, while it is still
    /// pending, and how many waits the run has pending.
    fn on_wait(&mut self, _wait: &Wait, _pending: usize) {}
    /// Called once following stops, however it stopped.
    fn finish(&mut self) {}
    /// Hides any live display while the user is asked something.
    fn pause(&mut self) {}
    /// Shows it again.
    fn resume(&mut self) {}
}

/// Shows nothing (JSON output, detached runs).
pub struct Quiet;

impl EventSink for Quiet {
    fn on_event(&mut self, _event: &Event) {}
}

/// Keeps every event (tests, and callers that render afterwards).
#[derive(Default)]
pub struct Collect(pub Vec<Event>);

impl EventSink for Collect {
    fn on_event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

/// Reconnects allowed in a row when the stream drops.
const MAX_RECONNECTS: u32 = 8;

fn is_transient(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal => {
            let m = status.message();
            m.contains("transport") || m.contains("h2 protocol") || m.contains("connection")
        }
        _ => false,
    }
}

/// Streams `run_id`'s events after `after_sequence` into `sink` until the run
/// finishes or `interrupt` fires. A dropped stream is resumed after the last
/// sequence seen, so no event is shown twice or missed.
pub async fn follow(
    runs: &mut RunServiceClient<Transport>,
    run_id: &str,
    after_sequence: i64,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<FollowEnd> {
    follow_until(runs, run_id, after_sequence, sink, interrupt, false).await
}

/// `follow`, optionally returning when a node starts waiting for a human.
pub async fn follow_until(
    runs: &mut RunServiceClient<Transport>,
    run_id: &str,
    after_sequence: i64,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
    stop_at_waits: bool,
) -> CliResult<FollowEnd> {
    let interrupted = interrupt.wait();
    tokio::pin!(interrupted);
    let mut last = after_sequence;
    let mut reconnects = 0u32;
    let result = 'outer: loop {
        if reconnects > 0 {
            tokio::select! {
                _ = backoff(reconnects) => {}
                _ = &mut interrupted => break 'outer Ok(FollowEnd::Interrupted { last_sequence: last }),
            }
        }
        let request = WatchRunRequest {
            run_id: run_id.to_string(),
            after_sequence: last,
        };
        let opened = tokio::select! {
            r = runs.watch_run(request) => r,
            _ = &mut interrupted => break 'outer Ok(FollowEnd::Interrupted { last_sequence: last }),
        };
        let mut stream = match opened {
            Ok(r) => r.into_inner(),
            Err(status) if is_transient(&status) && reconnects < MAX_RECONNECTS => {
                reconnects += 1;
                continue;
            }
            Err(status) => break Err(status.into()),
        };
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = &mut interrupted => break 'outer Ok(FollowEnd::Interrupted { last_sequence: last }),
            };
            match message {
                Ok(Some(resp)) => {
                    reconnects = 0;
                    let Some(event) = resp.event else { continue };
                    // Streamed text is live only (sequence 0): shown, never
                    // a place to resume from.
                    if event.kind() == EventKind::NodeOutputDelta {
                        sink.on_event(&event);
                        continue;
                    }
                    if event.sequence <= last {
                        continue;
                    }
                    last = event.sequence;
                    sink.on_event(&event);
                    if event.kind() == EventKind::RunFinished {
                        break 'outer Ok(FollowEnd::Finished {
                            last_sequence: last,
                        });
                    }
                    if event.kind() == EventKind::WaitStarted {
                        if stop_at_waits {
                            return Ok(FollowEnd::Waiting {
                                last_sequence: last,
                                node_id: event.node_id,
                            });
                        }
                        if sink.wants_waits() {
                            show_wait(runs, &event, sink).await;
                        }
                    }
                }
                Ok(None) => {
                    // The server closes the stream when the run ends; make sure it did.
                    let run = runs
                        .get_run(GetRunRequest {
                            run_id: run_id.to_string(),
                            ..Default::default()
                        })
                        .await
                        .map_err(CliError::from);
                    match run {
                        Ok(r)
                            if r.get_ref()
                                .run
                                .as_ref()
                                .is_some_and(|r| render::is_finished(r.status())) =>
                        {
                            break 'outer Ok(FollowEnd::Finished {
                                last_sequence: last,
                            });
                        }
                        Err(e) if reconnects >= MAX_RECONNECTS => break 'outer Err(e),
                        _ if reconnects >= MAX_RECONNECTS => {
                            break 'outer Err(CliError::failed(
                                "the event stream keeps closing before the run ends",
                            ));
                        }
                        _ => {
                            reconnects += 1;
                            continue 'outer;
                        }
                    }
                }
                Err(status) if is_transient(&status) && reconnects < MAX_RECONNECTS => {
                    reconnects += 1;
                    continue 'outer;
                }
                Err(status) => break 'outer Err(status.into()),
            }
        }
    };
    sink.finish();
    result
}

/// Hands the wait that `event` started to `sink`, if it is still pending.
/// Best effort: without it only the hint is missing.
async fn show_wait(
    runs: &mut RunServiceClient<Transport>,
    event: &Event,
    sink: &mut dyn EventSink,
) {
    let request = ListWaitsRequest {
        run_id: event.run_id.clone(),
        ..Default::default()
    };
    if let Ok(resp) = runs.list_waits(request).await {
        let waits = resp.into_inner().waits;
        if let Some(wait) = waits.iter().find(|w| w.node_id == event.node_id) {
            sink.on_wait(wait, waits.len());
        }
    }
}

/// The commands that answer a wait of `kind` at `node` of `run`, each
/// quoted: `approve`/`reject` for human://approve, `input` for
/// human://input. `prefix` is what comes before the command name
/// (`retake `, `retake --server URL `); `--node` is added when the run has
/// other waits too.
pub fn answer_commands(
    prefix: &str,
    run: &str,
    node: &str,
    kind: WaitKind,
    with_node: bool,
) -> String {
    let node = if with_node {
        format!(" --node {node}")
    } else {
        String::new()
    };
    let approve =
        format!("'{prefix}approve {run}{node}' or '{prefix}reject {run}{node} --feedback TEXT'");
    let input = format!("'{prefix}input {run}{node} --value TEXT'");
    match kind {
        WaitKind::Approval => approve,
        WaitKind::Input => input,
        WaitKind::Unspecified => format!("{approve}, or {input}"),
    }
}

async fn backoff(attempt: u32) {
    let ms = (100u64 << attempt.min(5)).min(3000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One line per node event, an optional progress bar on a terminal, and
/// with `verbose` node starts and streamed output.
pub struct TextProgress {
    style: Style,
    verbose: bool,
    show_bar: bool,
    /// Say how to answer a wait (when nobody is prompted for it here).
    wait_hints: bool,
    bar: Option<ProgressBar>,
    /// Where lines go instead of stdout.
    writer: Option<Box<dyn std::io::Write + Send>>,
    /// Length, position and elapsed time of a bar cleared while the user is asked something.
    paused: Option<(u64, u64, Duration)>,
    /// The run id the bar shows.
    run_id: String,
    /// Draw the bar nowhere (tests).
    hidden_bar: bool,
    running: BTreeSet<String>,
    /// The node whose streamed output line is still open.
    open_delta: Option<String>,
    /// The outputs a replay gave instead of running their nodes, by node.
    overrides: HashMap<String, Vec<OutputOverride>>,
}

impl TextProgress {
    /// `show_bar` is for terminals only; the bar appears when the run starts.
    pub fn new(style: Style, verbose: bool, show_bar: bool) -> Self {
        Self {
            style,
            verbose,
            show_bar,
            wait_hints: false,
            bar: None,
            writer: None,
            paused: None,
            run_id: String::new(),
            hidden_bar: false,
            running: BTreeSet::new(),
            open_delta: None,
            overrides: HashMap::new(),
        }
    }

    /// After a wait's line, also say which command answers it.
    pub fn with_wait_hints(mut self, on: bool) -> Self {
        self.wait_hints = on;
        self
    }

    /// Whether a progress bar belongs on this terminal.
    pub fn bar_wanted() -> bool {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::io::stdout().is_terminal()
    }

    fn print(&mut self, line: &str) {
        let mut text = String::new();
        if self.open_delta.take().is_some() {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        self.write(&text);
    }

    fn write(&mut self, text: &str) {
        if let Some(w) = &mut self.writer {
            let _ = w.write_all(text.as_bytes());
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| render::write_stdout(text.as_bytes())),
            None => render::write_stdout(text.as_bytes()),
        }
    }

    /// Writes the lines to `writer` instead of stdout, without a bar.
    pub fn to_writer(mut self, writer: Box<dyn std::io::Write + Send>) -> Self {
        self.writer = Some(writer);
        self.show_bar = false;
        self
    }

    /// A node settled; the bar counts only the nodes that completed (or
    /// were reused), as the run summary does.
    fn settle(&mut self, node: &str, completed: bool) {
        self.running.remove(node);
        if completed && let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.update_message();
    }

    /// The bar's position, if one is shown.
    pub fn bar_position(&self) -> Option<u64> {
        self.bar.as_ref().map(ProgressBar::position)
    }

    fn new_bar(&self, len: u64, pos: u64, elapsed: Duration) -> ProgressBar {
        let target = if self.hidden_bar {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        make_bar(target, &self.run_id, len, pos, elapsed)
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            let names: Vec<&str> = self.running.iter().map(String::as_str).take(4).collect();
            let more = self.running.len().saturating_sub(names.len());
            let mut msg = names.join(", ");
            if more > 0 {
                msg.push_str(&format!(" +{more}"));
            }
            bar.set_message(msg);
        }
    }

    /// The line shown for an event, if any.
    pub fn line(style: Style, verbose: bool, event: &Event) -> Option<String> {
        let node = &event.node_id;
        // Skip reasons may already say "skipped: …".
        let message = event
            .message
            .strip_prefix("skipped: ")
            .unwrap_or(&event.message);
        let with_message = |base: String, sep: &str| {
            if message.is_empty() {
                base
            } else {
                format!("{base}{sep}{message}")
            }
        };
        let line = match event.kind() {
            EventKind::NodeStarted if verbose => {
                let attempt = if event.attempt > 1 {
                    format!(" (attempt {})", event.attempt)
                } else {
                    String::new()
                };
                let worker = if event.worker.is_empty() {
                    String::new()
                } else {
                    format!(" on worker {}", event.worker)
                };
                format!("  {} {node} started{attempt}{worker}", style.dim("▸"))
            }
            // A worker step with no worker free: say so, it may be long.
            EventKind::NodeQueued => {
                with_message(format!("  {} {node} queued", style.yellow("…")), ": ")
            }
            EventKind::NodeCompleted if Self::is_override(event) => {
                Self::overridden_line(style, node, &[])
            }
            EventKind::NodeCompleted => {
                format!(
                    "  {} {node} completed ({})",
                    style.green("✓"),
                    render::duration(event.latency_ms)
                )
            }
            // One event for every node a replay reused.
            EventKind::NodeReused if !event.node_ids.is_empty() => {
                const SHOWN: usize = 8;
                let ids = &event.node_ids;
                let mut names = ids
                    .iter()
                    .take(SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if ids.len() > SHOWN {
                    names.push_str(&format!(" and {} more", ids.len() - SHOWN));
                }
                format!("  {} reused: {names}", style.cyan("↺"))
            }
            EventKind::NodeReused => {
                with_message(format!("  {} {node} reused", style.cyan("↺")), " from ")
            }
            EventKind::NodeFailed => {
                with_message(format!("  {} {node} failed", style.red("✗")), ": ")
            }
            EventKind::NodeSkipped => {
                with_message(format!("  {} {node} skipped", style.yellow("-")), ": ")
            }
            EventKind::NodeRetrying => with_message(
                format!(
                    "  {} {node} retrying (attempt {})",
                    style.yellow("↻"),
                    event.attempt
                ),
                ": ",
            ),
            EventKind::NodeCancelled => format!("  {} {node} cancelled", style.yellow("⊘")),
            EventKind::WaitStarted => {
                with_message(format!("  {} {node} waiting", style.yellow("⏸")), ": ")
            }
            EventKind::WaitResolved => {
                with_message(format!("  {} {node} resumed", style.green("▶")), ": ")
            }
            _ => return None,
        };
        Some(line)
    }

    /// Whether `event` announces a node whose outputs a replay gave: it
    /// completed without running.
    fn is_override(event: &Event) -> bool {
        event.kind() == EventKind::NodeCompleted && event.message == render::OVERRIDDEN_MESSAGE
    }

    /// The line of a node a replay did not run because its outputs were
    /// given, with where each value came from when known.
    pub fn overridden_line(style: Style, node: &str, overrides: &[OutputOverride]) -> String {
        let mut line = format!("  {} {node} overridden", style.cyan("↷"));
        if !overrides.is_empty() {
            line.push_str(&format!(": {}", render::override_origins(overrides)));
        }
        line
    }
}

impl EventSink for TextProgress {
    fn on_start(&mut self, run: &Run) {
        self.overrides = render::overrides_by_node(run);
        if !self.show_bar || self.bar.is_some() {
            return;
        }
        let counts = run.counts.unwrap_or_default();
        self.run_id = run.id.clone();
        // Time since the run started, for a run that started before we watched it.
        let elapsed = render::elapsed_ms(run.start_time.as_ref(), None)
            .map(|ms| Duration::from_millis(ms.max(0) as u64))
            .unwrap_or_default();
        // The bar follows from the first event on, so it counts from 0 however far the run is.
        self.bar = Some(self.new_bar(counts.total.max(0) as u64, 0, elapsed));
    }

    fn on_event(&mut self, event: &Event) {
        match event.kind() {
            EventKind::NodeStarted => {
                self.running.insert(event.node_id.clone());
                self.update_message();
            }
            EventKind::NodeReused if !event.node_ids.is_empty() => {
                for node in &event.node_ids {
                    self.settle(node, true);
                }
            }
            EventKind::NodeCompleted | EventKind::NodeReused => {
                self.settle(&event.node_id.clone(), true)
            }
            EventKind::NodeFailed | EventKind::NodeSkipped | EventKind::NodeCancelled => {
                self.settle(&event.node_id.clone(), false)
            }
            EventKind::NodeOutputDelta if self.verbose => {
                let mut text = String::new();
                if self.open_delta.as_deref() != Some(event.node_id.as_str()) {
                    if self.open_delta.is_some() {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "    {} ",
                        self.style.dim(&format!("{}>", event.node_id))
                    ));
                    self.open_delta = Some(event.node_id.clone());
                }
                text.push_str(&event.delta.replace('\n', "\n      "));
                self.write(&text);
                return;
            }
            _ => {}
        }
        if event.kind() == EventKind::NodeCompleted
            && (Self::is_override(event) || self.overrides.contains_key(&event.node_id))
        {
            let given = self
                .overrides
                .get(&event.node_id)
                .cloned()
                .unwrap_or_default();
            let line = Self::overridden_line(self.style, &event.node_id, &given);
            self.print(&line);
            return;
        }
        if let Some(line) = Self::line(self.style, self.verbose, event) {
            self.print(&line);
        }
    }

    fn wants_waits(&self) -> bool {
        self.wait_hints
    }

    fn on_wait(&mut self, wait: &Wait, pending: usize) {
        let commands = answer_commands(
            "retake ",
            &wait.run_id,
            &wait.node_id,
            wait.kind(),
            pending > 1,
        );
        self.print(&self.style.dim(&format!("    answer with {commands}")));
    }

    fn pause(&mut self) {
        if self.open_delta.take().is_some() {
            self.write("\n");
        }
        // Cleared rather than hidden, so no stale bar stays above the question.
        if let Some(bar) = self.bar.take() {
            self.paused = Some((bar.length().unwrap_or(0), bar.position(), bar.elapsed()));
            bar.finish_and_clear();
        }
    }

    fn resume(&mut self) {
        if let Some((len, pos, elapsed)) = self.paused.take() {
            self.bar = Some(self.new_bar(len, pos, elapsed));
            self.update_message();
        }
    }

    fn finish(&mut self) {
        if self.open_delta.take().is_some() {
            self.write("\n");
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The bar's template: the run id and how long the run has taken, then
/// the completed nodes out of all and the nodes running now. Two lines, so
/// that a run id and a bar fit an 80-column terminal.
pub const BAR_TEMPLATE: &str = "  {spinner} {prefix}  {took}\n  [{bar:30}] {pos}/{len} {wide_msg}";

/// `4s`, `1m 03s`, `1h 02m`: short enough for a line that also holds a run id.
pub fn took(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn make_bar(
    target: ProgressDrawTarget,
    run_id: &str,
    len: u64,
    pos: u64,
    elapsed: Duration,
) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target)
        .with_prefix(run_id.to_string())
        .with_elapsed(elapsed);
    bar.set_style(
        ProgressStyle::with_template(BAR_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "took",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&took(state.elapsed()));
                },
            )
            .progress_chars("=> "),
    );
    bar.set_position(pos);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One JSON object per event and line, sequence numbers included, so a
/// consumer can resume with `watch --after SEQ`.
pub struct JsonLines;

impl JsonLines {
    pub fn event_json(event: &Event) -> serde_json::Value {
        let node_status = if event.node_id.is_empty() {
            serde_json::Value::Null
        } else {
            match event.node_status() {
                NodeStatus::Unspecified => serde_json::Value::Null,
                s => node_status_name(s).into(),
            }
        };
        let run_status = match event.run_status() {
            RunStatus::Unspecified => serde_json::Value::Null,
            s => run_status_name(s).into(),
        };
        let empty_null = render::empty_null;
        serde_json::json!({
            "run_id": event.run_id,
            "sequence": event.sequence,
            "kind": event_kind_name(event.kind()),
            "time": render::rfc3339(event.time.as_ref()),
            "node_id": empty_null(&event.node_id),
            "run_status": run_status,
            "node_status": node_status,
            "attempt": if event.attempt > 0 { serde_json::Value::from(event.attempt) } else { serde_json::Value::Null },
            "message": empty_null(&event.message),
            "delta": empty_null(&event.delta),
            "artifact_ids": event.artifact_ids,
            "node_ids": event.node_ids,
            "latency_ms": if event.latency_ms > 0 { serde_json::Value::from(event.latency_ms) } else { serde_json::Value::Null },
        })
    }
}

impl EventSink for JsonLines {
    fn on_event(&mut self, event: &Event) {
        let mut line = Self::event_json(event).to_string();
        line.push('\n');
        render::write_stdout(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(kind: EventKind, node: &str) -> Event {
        Event {
            run_id: "run_1".into(),
            node_id: node.into(),
            kind: kind as i32,
            ..Default::default()
        }
    }

    fn shown(verbose: bool, events: &[Event]) -> String {
        let out = Shared::default();
        let mut sink =
            TextProgress::new(Style::PLAIN, verbose, true).to_writer(Box::new(out.clone()));
        for e in events {
            sink.on_event(e);
        }
        sink.finish();
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn one_line_per_node_event() {
        let completed = Event {
            latency_ms: 12,
            ..event(EventKind::NodeCompleted, "fetch")
        };
        let failed = Event {
            message: "boom".into(),
            ..event(EventKind::NodeFailed, "transform")
        };
        let skipped = Event {
            message: "skipped: upstream 'transform' did not complete".into(),
            ..event(EventKind::NodeSkipped, "publish")
        };
        let retrying = Event {
            attempt: 2,
            ..event(EventKind::NodeRetrying, "flaky")
        };
        let reused = Event {
            message: "run_0".into(),
            ..event(EventKind::NodeReused, "early")
        };
        let text = shown(
            false,
            &[
                event(EventKind::RunStarted, ""),
                event(EventKind::NodeStarted, "fetch"),
                completed,
                retrying,
                failed,
                skipped,
                reused,
                event(EventKind::RunFinished, ""),
            ],
        );
        assert_eq!(
            text,
            "  ✓ fetch completed (12 ms)\n  ↻ flaky retrying (attempt 2)\n  ✗ transform failed: boom\n  - publish skipped: upstream 'transform' did not complete\n  ↺ early reused from run_0\n"
        );
    }

    #[test]
    fn overridden_nodes_say_so_and_where_their_values_came_from() {
        let given = |node: &str| Event {
            message: "output overridden".into(),
            ..event(EventKind::NodeCompleted, node)
        };
        // The event alone says the node did not run.
        assert_eq!(shown(false, &[given("src")]), "  ↷ src overridden\n");
        // With the run, where each value came from.
        let out = Shared::default();
        let mut sink =
            TextProgress::new(Style::PLAIN, false, false).to_writer(Box::new(out.clone()));
        let given_as = |node: &str, output: &str, value: &str, source: &str| OutputOverride {
            selector: node.into(),
            output: output.into(),
            value: value.into(),
            source: source.into(),
        };
        sink.on_start(&Run {
            replay: Some(retake::v1::ReplayInfo {
                forked_from: "run_0".into(),
                overrides: vec![
                    given_as("src", "result", "rejected", ""),
                    given_as("two", "notes", "from the file", "@notes.txt"),
                    given_as("two", "draft", "line one\nline two", ""),
                ],
                ..Default::default()
            }),
            ..Default::default()
        });
        sink.on_event(&given("src"));
        sink.on_event(&given("two"));
        sink.on_event(&Event {
            latency_ms: 3,
            ..event(EventKind::NodeCompleted, "after")
        });
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "  ↷ src overridden: result = \"rejected\"\n\
             \x20 ↷ two overridden: notes from @notes.txt, draft = \"line one\\nline two\"\n\
             \x20 ✓ after completed (3 ms)\n"
        );
    }

    #[test]
    fn verbose_shows_starts_and_streamed_output() {
        let delta = |node: &str, text: &str| Event {
            delta: text.into(),
            ..event(EventKind::NodeOutputDelta, node)
        };
        let text = shown(
            true,
            &[
                event(EventKind::NodeStarted, "a"),
                delta("a", "Hel"),
                delta("a", "lo\nworld"),
                delta("b", "other"),
                Event {
                    latency_ms: 5,
                    ..event(EventKind::NodeCompleted, "a")
                },
            ],
        );
        assert_eq!(
            text,
            "  ▸ a started\n    a> Hello\n      world\n    b> other\n  ✓ a completed (5 ms)\n"
        );
        // Without -v streamed output is not shown.
        assert_eq!(shown(false, &[delta("a", "Hello")]), "");
    }

    #[test]
    fn waits_say_how_to_answer_them() {
        let out = Shared::default();
        let mut sink = TextProgress::new(Style::PLAIN, false, false)
            .with_wait_hints(true)
            .to_writer(Box::new(out.clone()));
        assert!(sink.wants_waits());
        sink.on_event(&Event {
            message: "Publish?".into(),
            ..event(EventKind::WaitStarted, "review")
        });
        let wait = |node: &str, kind: WaitKind| Wait {
            run_id: "run_1".into(),
            node_id: node.into(),
            kind: kind as i32,
            ..Default::default()
        };
        sink.on_wait(&wait("review", WaitKind::Approval), 1);
        sink.on_wait(&wait("topic", WaitKind::Input), 1);
        sink.on_wait(&wait("review", WaitKind::Approval), 2);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "  ⏸ review waiting: Publish?\n\
             \x20   answer with 'retake approve run_1' or 'retake reject run_1 --feedback TEXT'\n\
             \x20   answer with 'retake input run_1 --value TEXT'\n\
             \x20   answer with 'retake approve run_1 --node review' or 'retake reject run_1 --node review --feedback TEXT'\n"
        );
        // Without hints nobody asks for the wait.
        assert!(!TextProgress::new(Style::PLAIN, false, false).wants_waits());
    }

    fn hidden_bar() -> TextProgress {
        let mut sink =
            TextProgress::new(Style::PLAIN, false, true).to_writer(Box::new(Shared::default()));
        sink.show_bar = true;
        sink.hidden_bar = true;
        sink
    }

    fn run_of(total: i32, completed: i32, started_secs_ago: i64) -> Run {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Run {
            id: "run_0196f0c2-5a1b-7c3d-9e8f-0123456789ab".into(),
            counts: Some(retake::v1::NodeCounts {
                total,
                completed,
                ..Default::default()
            }),
            start_time: Some(prost_types::Timestamp {
                seconds: now - started_secs_ago,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_bar_counts_completed_nodes_only() {
        let mut sink = hidden_bar();
        sink.on_start(&run_of(20, 0, 0));
        for i in 1..=7 {
            sink.on_event(&event(EventKind::NodeCompleted, &format!("step{i:02}")));
        }
        // A cancellation settles the other 13 nodes without completing them.
        for i in 8..=20 {
            sink.on_event(&event(EventKind::NodeCancelled, &format!("step{i:02}")));
        }
        assert_eq!(
            sink.bar_position(),
            Some(7),
            "as the summary says: 7/20 completed"
        );
        sink.on_event(&event(EventKind::NodeReused, "again"));
        sink.on_event(&event(EventKind::NodeFailed, "broken"));
        sink.on_event(&event(EventKind::NodeSkipped, "blocked"));
        assert_eq!(sink.bar_position(), Some(8));
    }

    #[test]
    fn the_bar_shows_the_run_id_and_its_time_from_the_start() {
        let mut sink = hidden_bar();
        // Watching a run that started 90 s ago: its events come from the first one on.
        sink.on_start(&run_of(5, 3, 90));
        let bar = sink.bar.as_ref().unwrap();
        assert_eq!(bar.prefix(), "run_0196f0c2-5a1b-7c3d-9e8f-0123456789ab");
        assert!(
            bar.elapsed() >= Duration::from_secs(90),
            "{:?}",
            bar.elapsed()
        );
        assert_eq!((bar.position(), bar.length()), (0, Some(5)));
        for node in ["a", "b", "c"] {
            sink.on_event(&event(EventKind::NodeCompleted, node));
        }
        assert!(BAR_TEMPLATE.contains("{prefix}") && BAR_TEMPLATE.contains("{took"));
        // Asking the user something clears the bar; it comes back as it was.
        sink.pause();
        assert!(sink.bar.is_none());
        sink.resume();
        let bar = sink.bar.as_ref().unwrap();
        assert_eq!(bar.prefix(), "run_0196f0c2-5a1b-7c3d-9e8f-0123456789ab");
        assert!(bar.elapsed() >= Duration::from_secs(90));
        assert_eq!(bar.position(), 3);
    }

    #[test]
    fn elapsed_time_is_short() {
        assert_eq!(took(Duration::from_millis(4200)), "4s");
        assert_eq!(took(Duration::from_secs(63)), "1m 03s");
        assert_eq!(took(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn json_lines_carry_sequence_numbers() {
        let e = Event {
            sequence: 7,
            latency_ms: 3,
            ..event(EventKind::NodeCompleted, "fetch")
        };
        let v = JsonLines::event_json(&e);
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["kind"], "node_completed");
        assert_eq!(v["node_id"], "fetch");
        assert_eq!(v["latency_ms"], 3);
        assert!(v["message"].is_null());
    }
}
