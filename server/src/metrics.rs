//! Prometheus metrics (docs/operate.md): what the engine counts as it goes,
//! and what a scrape reads from the engine at that moment. One registry per
//! process, like a log: the engine records into it wherever it is, and
//! `/metrics` (api::metrics_http) encodes it in the OpenMetrics text format.
//!
//! Labels stay few and fixed (statuses, agent schemes, outcomes): never a
//! run or node id, so a series count does not grow with the runs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// `start` or `replay`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The agent URI's scheme: llm, local, a2a, human, worker.
    pub agent: String,
    /// completed, failed, cancelled, skipped, reused or retried.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    pub agent: String,
}

/// Everything the engine counts.
pub struct Metrics {
    pub runs_started: Family<RunLabels, Counter>,
    pub runs_finished: Family<StatusLabels, Counter>,
    pub node_executions: Family<NodeLabels, Counter>,
    pub node_duration: Family<AgentLabels, Histogram>,
    pub commit_duration: Histogram,
    pub events_streamed: Counter,
    /// Spans not exported: the queue was full or the collector refused.
    pub trace_spans_dropped: Counter,
    /// Set at each scrape from the engine.
    pub runs_in_flight: Gauge,
    pub workers_connected: Gauge,
    pub worker_tasks_queued: Gauge,
    pub database_size: Gauge,
    registry: Registry,
}

fn node_buckets() -> Histogram {
    // 1 ms to ~9 min: local steps take milliseconds, LLM calls seconds,
    // human waits minutes.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 20,
    ))
}

fn commit_buckets() -> Histogram {
    // 50 µs to ~3 s: a grouped SQLite commit takes well under a millisecond.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_05, 2.0, 16,
    ))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("retake");
        let m = Self {
            runs_started: Family::default(),
            runs_finished: Family::default(),
            node_executions: Family::default(),
            node_duration: Family::new_with_constructor(node_buckets),
            commit_duration: commit_buckets(),
            events_streamed: Counter::default(),
            trace_spans_dropped: Counter::default(),
            runs_in_flight: Gauge::default(),
            workers_connected: Gauge::default(),
            worker_tasks_queued: Gauge::default(),
            database_size: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "runs_started",
            "Runs started (kind: start or replay)",
            m.runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs finished, by final status",
            m.runs_finished.clone(),
        );
        registry.register(
            "node_executions",
            "Node executions that ended, by agent scheme and outcome (retried: an attempt that failed and is tried again)",
            m.node_executions.clone(),
        );
        registry.register_with_unit(
            "node_duration",
            "Time from a node's start to its end, by agent scheme",
            Unit::Seconds,
            m.node_duration.clone(),
        );
        registry.register_with_unit(
            "commit_duration",
            "Time to write one grouped transaction to the database",
            Unit::Seconds,
            m.commit_duration.clone(),
        );
        registry.register(
            "events_streamed",
            "Run events sent to WatchRun streams",
            m.events_streamed.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Trace spans not exported: the export queue was full or the collector refused them",
            m.trace_spans_dropped.clone(),
        );
        registry.register(
            "runs_in_flight",
            "Runs this server executes now",
            m.runs_in_flight.clone(),
        );
        registry.register(
            "workers_connected",
            "Workers connected to this server",
            m.workers_connected.clone(),
        );
        registry.register(
            "worker_tasks_queued",
            "worker:// tasks waiting for a worker",
            m.worker_tasks_queued.clone(),
        );
        registry.register_with_unit(
            "database_size",
            "Size of the database",
            Unit::Bytes,
            m.database_size.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn run_started(&self, replay: bool) {
        let kind = if replay { "replay" } else { "start" };
        self.runs_started.get_or_create(&RunLabels { kind }).inc();
    }

    pub fn run_finished(&self, status: &'static str) {
        self.runs_finished
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// A node's end: `outcome` and, when it ran, how long.
    pub fn node_ended(&self, agent_uri: &str, outcome: &'static str, took: Option<Duration>) {
        let agent = scheme(agent_uri);
        if let Some(took) = took {
            self.node_duration
                .get_or_create(&AgentLabels {
                    agent: agent.clone(),
                })
                .observe(took.as_secs_f64());
        }
        self.node_executions
            .get_or_create(&NodeLabels { agent, outcome })
            .inc();
    }
}

/// The scheme of an agent URI, from a fixed set (anything else is `other`),
/// so a typo in a workflow cannot add a series.
fn scheme(agent: &str) -> String {
    let scheme = agent.split("://").next().unwrap_or_default();
    match scheme {
        "llm" | "local" | "a2a" | "human" | "worker" => scheme,
        _ => "other",
    }
    .to_string()
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.run_started(false);
        m.run_finished("completed");
        m.node_ended(
            "llm://openai/gpt-4o",
            "completed",
            Some(Duration::from_millis(20)),
        );
        m.node_ended("mystery://x", "failed", None);
        m.commit_duration.observe(0.0002);
        let text = m.encode();
        for line in [
            "retake_runs_started_total{kind=\"start\"} 1",
            "retake_runs_finished_total{status=\"completed\"} 1",
            "retake_node_executions_total{agent=\"llm\",outcome=\"completed\"} 1",
            "retake_node_executions_total{agent=\"other\",outcome=\"failed\"} 1",
            "retake_node_duration_seconds_count{agent=\"llm\"} 1",
            "retake_commit_duration_seconds_count 1",
            "# TYPE retake_database_size_bytes gauge",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
