//! Following a run's event stream: resuming after the last sequence seen
//! when the connection drops, stopping on Ctrl-C, and showing the events as
//! lines, a progress bar, or JSON lines.

use crate::connect::Transport;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style, event_kind_name, node_status_name, run_status_name};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use retake::v1::run_service_client::RunServiceClient;
use retake::v1::{Event, EventKind, GetRunRequest, NodeStatus, Run, RunStatus, WatchRunRequest};
use std::collections::BTreeSet;
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
                    if stop_at_waits && event.kind() == EventKind::WaitStarted {
                        return Ok(FollowEnd::Waiting {
                            last_sequence: last,
                            node_id: event.node_id,
                        });
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
    /// Length and position of a bar cleared while the user is asked something.
    paused: Option<(u64, u64)>,
    running: BTreeSet<String>,
    /// The node whose streamed output line is still open.
    open_delta: Option<String>,
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
            running: BTreeSet::new(),
            open_delta: None,
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

    fn advance(&mut self, node: &str) {
        self.running.remove(node);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.update_message();
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
                format!("  {} {node} started{attempt}", style.dim("▸"))
            }
            EventKind::NodeCompleted => {
                format!(
                    "  {} {node} completed ({})",
                    style.green("✓"),
                    render::duration(event.latency_ms)
                )
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
}

impl EventSink for TextProgress {
    fn on_start(&mut self, run: &Run) {
        if !self.show_bar || self.bar.is_some() {
            return;
        }
        let counts = run.counts.unwrap_or_default();
        self.bar = Some(make_bar(counts.total.max(0) as u64, 0));
    }

    fn on_event(&mut self, event: &Event) {
        match event.kind() {
            EventKind::NodeStarted => {
                self.running.insert(event.node_id.clone());
                self.update_message();
            }
            EventKind::NodeCompleted
            | EventKind::NodeFailed
            | EventKind::NodeSkipped
            | EventKind::NodeReused
            | EventKind::NodeCancelled => self.advance(&event.node_id.clone()),
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
        if let Some(line) = Self::line(self.style, self.verbose, event) {
            self.print(&line);
        }
        if self.wait_hints && event.kind() == EventKind::WaitStarted {
            let (run, node) = (&event.run_id, &event.node_id);
            let hint = format!(
                "    answer with 'retake approve {run} --node {node}' (or reject), or 'retake input {run} --node {node} --value TEXT'"
            );
            self.print(&self.style.dim(&hint));
        }
    }

    fn pause(&mut self) {
        if self.open_delta.take().is_some() {
            self.write("\n");
        }
        // Cleared rather than hidden, so no stale bar stays above the question.
        if let Some(bar) = self.bar.take() {
            self.paused = Some((bar.length().unwrap_or(0), bar.position()));
            bar.finish_and_clear();
        }
    }

    fn resume(&mut self) {
        if let Some((len, pos)) = self.paused.take() {
            self.bar = Some(make_bar(len, pos));
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

fn make_bar(len: u64, pos: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("  {spinner} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
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
        let empty_null = |s: &str| {
            if s.is_empty() {
                serde_json::Value::Null
            } else {
                s.into()
            }
        };
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
        sink.on_event(&Event {
            message: "Publish?".into(),
            ..event(EventKind::WaitStarted, "review")
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "  ⏸ review waiting: Publish?\n    answer with 'retake approve run_1 --node review' (or reject), or 'retake input run_1 --node review --value TEXT'\n"
        );
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
