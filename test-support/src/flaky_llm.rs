//! A fake OpenAI Chat Completions service for the fault-injection tests.
//! It logs every invocation outside the database, so that checks need not
//! take the server's word for anything, tells which server process sent
//! each request (by its API key), and fails the first invocations of
//! `flaky*` nodes on purpose.

use crate::fake_http::{json_response, serve, sse_response};
use crate::{openai, rng};
use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::response::Response;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable the workflows take their API key from; give
/// each server process [`process_key`] of its number.
pub const KEY_VAR: &str = "RETAKE_SECRET_FAULTS";
const KEY_PREFIX: &str = "faults-key-process-";

/// The API key of server process `process`: the fake knows which process
/// sent a request even when it reads the request after that process died.
pub fn process_key(process: usize) -> String {
    format!("{KEY_PREFIX}{process}")
}

/// How one invocation of the fake ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being answered.
    Running,
    /// The whole answer was handed to the connection.
    Answered(String),
    /// A deliberate failure (HTTP 408, transient and not retried inside the
    /// agent), which the node's retry policy retries.
    Failed,
    /// The connection went away before the answer was complete.
    Abandoned,
}

/// One call of the fake: which node of which workflow, from which server
/// process, and when.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// `WORKFLOW/NODE`, from the system prompt `key=WORKFLOW/NODE`.
    pub key: String,
    /// 1-based count of this key's invocations, in order of arrival.
    pub n: u32,
    /// The server process (0, 1, …) whose key the request carried.
    pub process: Option<usize>,
    pub start: Instant,
    /// When the answer was complete or the connection was dropped.
    pub end: Option<Instant>,
    pub outcome: Outcome,
    /// The user message: the upstream outputs the node was given.
    pub user: String,
}

impl Invocation {
    pub fn node(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }
}

struct FakeState {
    seed: u64,
    /// Invocations of a `flaky*` node that fail before it succeeds.
    failures_per_flaky_node: u32,
    log: Mutex<Vec<Invocation>>,
    in_flight: AtomicUsize,
}

/// A fake Chat Completions endpoint on 127.0.0.1:0. It answers
/// `<KEY#N>` as a stream after 20–200 ms (drawn from the seed, the key and
/// N), and fails the first invocations of nodes whose id starts with
/// `flaky`.
pub struct FakeLlm {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeLlm {
    pub async fn start(seed: u64, failures_per_flaky_node: u32) -> FakeLlm {
        let state = Arc::new(FakeState {
            seed,
            failures_per_flaky_node,
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let state = shared.clone();
            async move { handle(state, req).await }
        });
        let addr = serve(app).await;
        FakeLlm { addr, state }
    }

    /// The `api_base` workflows point at.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn log(&self) -> Vec<Invocation> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }
}

/// Marks the end of an invocation when dropped: at the end of its answer,
/// or when the connection (the killed server) went away first.
struct Track {
    state: Arc<FakeState>,
    index: usize,
}

impl Track {
    fn set(&self, outcome: Outcome) {
        self.state.log.lock().unwrap()[self.index].outcome = outcome;
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        let mut log = self.state.log.lock().unwrap();
        let inv = &mut log[self.index];
        inv.end = Some(Instant::now());
        if inv.outcome == Outcome::Running {
            inv.outcome = Outcome::Abandoned;
        }
        drop(log);
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn message(body: &Value, role: &str) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == role)
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn handle(state: Arc<FakeState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    if !parts.uri.path().ends_with("/chat/completions") {
        return json_response(404, &json!({"error": {"message": "not found"}}));
    }
    // A request cut short (its server killed) has no key and is refused.
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(key) = message(&body, "system")
        .strip_prefix("key=")
        .map(str::to_string)
    else {
        return json_response(
            400,
            &json!({"error": {"message": "the fake needs a system prompt key=WORKFLOW/NODE"}}),
        );
    };
    let process = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| v.strip_prefix(KEY_PREFIX))
        .and_then(|v| v.parse().ok());
    let (index, n) = {
        let mut log = state.log.lock().unwrap();
        let n = log.iter().filter(|i| i.key == key).count() as u32 + 1;
        log.push(Invocation {
            key: key.clone(),
            n,
            process,
            start: Instant::now(),
            end: None,
            outcome: Outcome::Running,
            user: message(&body, "user"),
        });
        (log.len() - 1, n)
    };
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let track = Track {
        state: state.clone(),
        index,
    };
    let total = 20 + rng::hash(state.seed, &format!("{key}#{n}")) % 181;
    tokio::time::sleep(Duration::from_millis(total / 2)).await;

    let node = key.rsplit('/').next().unwrap_or_default();
    if node.starts_with("flaky") && n <= state.failures_per_flaky_node {
        track.set(Outcome::Failed);
        return json_response(
            408,
            &json!({"error": {"message": format!("deliberate failure {n} of {key}"), "type": "timeout"}}),
        );
    }

    // The answer's events spread over the other half of the time.
    let content = format!("<{key}#{n}>");
    let events = openai::stream(
        "gpt-4o-mini",
        &[&format!("<{key}"), &format!("#{n}>")],
        7,
        3,
    );
    let gap = Duration::from_millis(total / 2) / (events.len() as u32 - 1);
    let stream = futures::stream::unfold(
        (events.into_iter(), 0usize, Some(track), content),
        move |(mut events, i, mut track, content)| async move {
            let event = events.next()?;
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            if events.len() == 0
                && let Some(t) = track.take()
            {
                t.set(Outcome::Answered(content.clone()));
                drop(t);
            }
            Some((Bytes::from(event), (events, i + 1, track, content)))
        },
    );
    sse_response(stream)
}
