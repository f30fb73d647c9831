//! OpenTelemetry traces (docs/operate.md), exported over OTLP/gRPC when an
//! endpoint is configured and off (no-op spans) otherwise.
//!
//! One trace per run: the run's span is the root (or, when StartRun or
//! ReplayRun came with a W3C `traceparent`, a child of the caller's span,
//! through the gRPC call's server span), and each node attempt is a child
//! of it. A run's trace and span ids come from its id, so the spans of a
//! run resumed after a restart join the same trace, and a replay links to
//! its source run's span without reading anything.
//!
//! Exporting never slows a run: finished spans go into a bounded queue a
//! background task exports in batches; when the queue is full a span is
//! dropped and counted (`retake_trace_spans_dropped_total`).

use crate::metrics::metrics;
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use sha2::Digest;
use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans waiting to be exported, at most.
const QUEUE: usize = 4096;
/// Spans per export call, at most.
const BATCH: usize = 512;
/// How long a finished span waits for others to share its export call.
const LINGER: Duration = Duration::from_millis(500);

struct Telemetry {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    flushed: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Starts exporting spans to the OTLP/gRPC `endpoint`
/// (`http://collector:4317`). Called once, at start-up, inside the runtime.
pub fn init(endpoint: &str, service: &str) -> anyhow::Result<()> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot export traces to {endpoint}: {e}"))?;
    // The exporter sends the resource (service.name) with every batch.
    exporter.set_resource(&resource);
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(export(exporter, rx));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Queue { tx })
        .with_id_generator(RunIds)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("retake");
    TELEMETRY
        .set(Telemetry {
            tracer,
            provider,
            flushed: tokio::sync::Mutex::new(Some(task)),
        })
        .map_err(|_| anyhow::anyhow!("telemetry is set up already"))?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(())
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    TELEMETRY.get().is_some()
}

/// Exports what is queued, waiting at most `timeout`: at shutdown, so the
/// spans of the last runs are not lost.
pub async fn flush(timeout: Duration) {
    let Some(t) = TELEMETRY.get() else { return };
    // Ends the queue: the export task sends what it holds and stops.
    let _ = t.provider.shutdown();
    if let Some(task) = t.flushed.lock().await.take() {
        let _ = tokio::time::timeout(timeout, task).await;
    }
}

/// The finished-span queue.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            metrics().trace_spans_dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn export(exporter: opentelemetry_otlp::SpanExporter, mut rx: mpsc::Receiver<SpanData>) {
    let mut warned = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        if let Err(e) = exporter.export(batch).await {
            metrics().trace_spans_dropped.inc_by(n);
            // Once: a collector that is down would otherwise fill the log.
            if !warned {
                tracing::warn!(error = %e, "cannot export trace spans; dropping them until the collector answers");
                warned = true;
            }
        } else {
            warned = false;
        }
    }
}

thread_local! {
    /// Ids the next span built on this thread takes (see `RunIds`), each
    /// taken once.
    static NEXT_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
    static NEXT_SPAN: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Random ids, except for a run's span, whose ids come from the run id.
#[derive(Debug)]
struct RunIds;

impl IdGenerator for RunIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE
            .with(Cell::take)
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN
            .with(Cell::take)
            .unwrap_or_else(|| RandomIdGenerator::default().new_span_id())
    }
}

/// The trace and span ids of a run's span: the run id's UUID is the trace
/// id, a digest of it the span id.
pub fn run_ids(run_id: &str) -> (TraceId, SpanId) {
    let uuid = run_id
        .strip_prefix("run_")
        .and_then(|u| uuid::Uuid::parse_str(u).ok());
    let digest = sha2::Sha256::digest(run_id.as_bytes());
    let trace = match uuid {
        Some(u) => TraceId::from_bytes(*u.as_bytes()),
        None => TraceId::from_bytes(digest[..16].try_into().expect("16 bytes")),
    };
    let span = SpanId::from_bytes(digest[16..24].try_into().expect("8 bytes"));
    (trace, span)
}

/// A run's span, open while its driver runs; `Context` for its nodes'.
#[derive(Clone, Default)]
pub struct RunTrace {
    cx: Option<Context>,
}

impl RunTrace {
    /// Starts the span of `run_id`: a child of the current context when
    /// that carries a caller's span (the gRPC call that started the run),
    /// else a root with the run's own ids. A replay links to its source's.
    pub fn start(run_id: &str, workflow: &str, forked_from: Option<&str>) -> Self {
        let Some(t) = TELEMETRY.get() else {
            return Self::default();
        };
        let parent = Context::current();
        let mut attributes = vec![
            KeyValue::new("retake.run_id", run_id.to_string()),
            KeyValue::new("retake.workflow", workflow.to_string()),
        ];
        let mut links = Vec::new();
        if let Some(source) = forked_from {
            attributes.push(KeyValue::new("retake.forked_from", source.to_string()));
            let (trace, span) = run_ids(source);
            links.push(Link::with_context(SpanContext::new(
                trace,
                span,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )));
        }
        // A call without a caller's trace has a trace of its own; the run
        // is then the root of its own, not a child of the call's.
        let continues_caller = parent.get::<FromCaller>().is_some();
        let builder = t
            .tracer
            .span_builder(format!("run {workflow}"))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .with_links(links);
        let span = if continues_caller && parent.span().span_context().is_valid() {
            builder.start_with_context(&t.tracer, &parent)
        } else {
            let (trace, span) = run_ids(run_id);
            NEXT_TRACE.with(|id| id.set(Some(trace)));
            NEXT_SPAN.with(|id| id.set(Some(span)));
            let started = builder.start_with_context(&t.tracer, &Context::new());
            NEXT_TRACE.with(|id| id.set(None));
            NEXT_SPAN.with(|id| id.set(None));
            started
        };
        Self {
            cx: Some(Context::new().with_span(span)),
        }
    }

    /// Ends the run's span with its final status.
    pub fn finish(&self, status: &str, failure: Option<&str>) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        span.set_attribute(KeyValue::new("retake.status", status.to_string()));
        if let Some(message) = failure {
            span.set_status(opentelemetry::trace::Status::error(message.to_string()));
        }
        span.end();
    }

    /// Starts a node attempt's span, a child of the run's.
    pub fn node(&self, run_id: &str, node_id: &str, agent: &str, attempt: u32) -> NodeTrace {
        let (Some(cx), Some(t)) = (&self.cx, TELEMETRY.get()) else {
            return NodeTrace::default();
        };
        let mut attributes = vec![
            KeyValue::new("retake.run_id", run_id.to_string()),
            KeyValue::new("retake.node_id", node_id.to_string()),
            KeyValue::new("retake.attempt", i64::from(attempt)),
            KeyValue::new("retake.agent", agent.to_string()),
            KeyValue::new("retake.reused", false),
        ];
        attributes.extend(gen_ai_request(agent));
        let span = t
            .tracer
            .span_builder(format!("node {node_id}"))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(&t.tracer, cx);
        NodeTrace {
            cx: Some(cx.with_span(span)),
        }
    }

    /// A node a replay reused: a span of no length saying so.
    pub fn reused(&self, run_id: &str, node_id: &str, from_run: &str) {
        let (Some(cx), Some(t)) = (&self.cx, TELEMETRY.get()) else {
            return;
        };
        let mut span = t
            .tracer
            .span_builder(format!("node {node_id}"))
            .with_attributes(vec![
                KeyValue::new("retake.run_id", run_id.to_string()),
                KeyValue::new("retake.node_id", node_id.to_string()),
                KeyValue::new("retake.reused", true),
                KeyValue::new("retake.reused_from_run", from_run.to_string()),
            ])
            .start_with_context(&t.tracer, cx);
        span.end();
    }
}

/// A node attempt's span.
#[derive(Clone, Default)]
pub struct NodeTrace {
    cx: Option<Context>,
}

impl NodeTrace {
    /// Ends the attempt's span: `model` and token counts for an LLM step
    /// (the GenAI conventions), the error when it failed.
    pub fn finish(&self, model: Option<&str>, tokens: Option<(i64, i64)>, error: Option<&str>) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if let Some(model) = model {
            span.set_attribute(KeyValue::new("gen_ai.response.model", model.to_string()));
        }
        if let Some((input, output)) = tokens {
            span.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", input));
            span.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", output));
        }
        if let Some(error) = error {
            span.set_status(opentelemetry::trace::Status::error(error.to_string()));
        }
        span.end();
    }
}

/// `gen_ai.system`, `gen_ai.request.model` and `gen_ai.operation.name` of
/// an `llm://PROVIDER/MODEL` agent; nothing for other agents.
fn gen_ai_request(agent: &str) -> Vec<KeyValue> {
    let Some(rest) = agent.strip_prefix("llm://") else {
        return Vec::new();
    };
    let (system, model) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = vec![
        KeyValue::new("gen_ai.system", system.to_string()),
        KeyValue::new("gen_ai.operation.name", "chat"),
    ];
    if !model.is_empty() {
        out.push(KeyValue::new("gen_ai.request.model", model.to_string()));
    }
    out
}

/// `future`, run in the current trace context wherever it is polled: for
/// work a call hands to another task (a run's start).
pub fn carried<F: std::future::Future>(future: F) -> opentelemetry::context::WithContext<F> {
    opentelemetry::context::FutureExt::with_context(future, Context::current())
}

/// Ends a call's server span, with the call's gRPC status when the
/// response's headers carry it (a call refused at once).
pub fn end_rpc(cx: &Context, grpc_status: Option<&str>) {
    let span = cx.span();
    if let Some(code) = grpc_status.and_then(|c| c.parse::<i64>().ok()) {
        span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
        if code != 0 {
            span.set_status(opentelemetry::trace::Status::error(format!(
                "gRPC status {code}"
            )));
        }
    }
    span.end();
}

/// The context a gRPC request's `traceparent` (W3C) carries; the current
/// one when it carries none.
pub fn extract(headers: &http::HeaderMap) -> Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
}

/// Starts the server span of a gRPC call to `path` (`/retake.v1.RunService/StartRun`).
pub fn rpc_span(path: &str, parent: &Context) -> Option<Context> {
    let t = TELEMETRY.get()?;
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = t
        .tracer
        .span_builder(path.trim_start_matches('/').to_string())
        .with_kind(SpanKind::Server)
        .with_attributes(vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
        ])
        .start_with_context(&t.tracer, parent);
    let cx = parent.with_span(span);
    // A caller's trace (from `traceparent`) goes on into what the call starts.
    Some(if parent.span().span_context().is_remote() {
        cx.with_value(FromCaller)
    } else {
        cx
    })
}

/// Marks a call's context as continuing the caller's trace.
#[derive(Clone, Copy, Debug)]
struct FromCaller;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_ids_come_from_its_id() {
        let id = "run_01a20521-8c44-717a-b001-f31d508f3ca1";
        let (trace, span) = run_ids(id);
        assert_eq!(trace.to_string(), "01a205218c44717ab001f31d508f3ca1");
        assert_eq!(run_ids(id), (trace, span));
        assert_ne!(run_ids("run_other").1, span);
    }

    #[test]
    fn llm_agents_name_their_system_and_model() {
        let kv = gen_ai_request("llm://openai/gpt-4o-mini");
        assert!(kv.contains(&KeyValue::new("gen_ai.system", "openai")));
        assert!(kv.contains(&KeyValue::new("gen_ai.request.model", "gpt-4o-mini")));
        assert!(gen_ai_request("local://echo").is_empty());
    }
}
