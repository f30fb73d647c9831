//! For the fault-injection tests: a seeded random generator, a fake Chat
//! Completions service that logs every invocation outside the database,
//! the retake-server process that gets killed, and read-only looks at its
//! database file while it is down.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable the workflows take their API key from. Every
/// server process gets its own value, so the fake knows which process
/// sent a request even when it reads the request after that process died.
pub const KEY_VAR: &str = "RETAKE_SECRET_FAULTS";
const KEY_PREFIX: &str = "faults-key-process-";

/// The seed: `FAULTS_SEED` (decimal or 0x-hex) or a fixed default.
pub fn seed() -> u64 {
    match std::env::var("FAULTS_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("FAULTS_SEED must be a number, got {s:?}"))
        }
        Err(_) => 0x5EED_F417_0001,
    }
}

/// xorshift64*: small, fast and good enough to pick timings and shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number derived from the seed and a text, the same on every run.
pub fn hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    splitmix(h ^ seed)
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

/// A fake OpenAI Chat Completions endpoint on 127.0.0.1:0. It answers
/// `<KEY#N>` as a stream of chunks after 20–200 ms (drawn from the seed,
/// the key and N), and fails the first invocations of nodes whose id
/// starts with `flaky`.
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
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

fn json_reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn chunk(data: Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

async fn handle(state: Arc<FakeState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    if !parts.uri.path().ends_with("/chat/completions") {
        return json_reply(404, json!({"error": {"message": "not found"}}));
    }
    let headers: HeaderMap = parts.headers;
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(key) = message(&body, "system")
        .strip_prefix("key=")
        .map(str::to_string)
    else {
        return json_reply(
            400,
            json!({"error": {"message": "the fake needs a system prompt key=WORKFLOW/NODE"}}),
        );
    };
    let process = headers
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
    let total = 20 + hash(state.seed, &format!("{key}#{n}")) % 181;
    tokio::time::sleep(Duration::from_millis(total / 2)).await;

    let node = key.rsplit('/').next().unwrap_or_default();
    if node.starts_with("flaky") && n <= state.failures_per_flaky_node {
        track.set(Outcome::Failed);
        return json_reply(
            408,
            json!({"error": {"message": format!("deliberate failure {n} of {key}"), "type": "timeout"}}),
        );
    }

    let content = format!("<{key}#{n}>");
    let pieces = vec![
        chunk(
            json!({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": format!("<{key}")}}]}),
        ),
        chunk(
            json!({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": format!("#{n}>")}}]}),
        ),
        Bytes::from(format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        )),
    ];
    let gap = Duration::from_millis(total / 4);
    let stream = futures::stream::unfold(
        (pieces.into_iter(), 0usize, Some(track), content),
        move |(mut pieces, i, track, content)| async move {
            let piece = pieces.next()?;
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let mut track = track;
            if pieces.len() == 0
                && let Some(t) = track.take()
            {
                t.set(Outcome::Answered(content.clone()));
                drop(t);
            }
            Some((
                Ok::<_, std::convert::Infallible>(piece),
                (pieces, i + 1, track, content),
            ))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// One retake-server process on 127.0.0.1:0 over the shared database.
pub struct ServerProc {
    child: Option<Child>,
    pub addr: String,
    /// 0 for the first process, then one more for each restart.
    pub process: usize,
    pub spawned: Instant,
}

impl ServerProc {
    /// Starts the binary and waits for its `retake-server listening on`
    /// line (other lines are skipped). Its logs are appended to `log`.
    pub fn spawn(db: &Path, process: usize, log: &Path, extra_args: &[String]) -> ServerProc {
        let (mut server, ready) = ServerProc::start(db, process, log, extra_args);
        server.addr = match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                drop(server);
                panic!(
                    "retake-server process {process} did not print its address within 60 s; its log:\n{}",
                    tail(log, 4000)
                );
            }
        };
        server
    }

    /// Starts the binary without waiting for it: it may still be opening
    /// the database or resuming runs. The receiver gets its address.
    pub fn start(
        db: &Path,
        process: usize,
        log: &Path,
        extra_args: &[String],
    ) -> (ServerProc, std::sync::mpsc::Receiver<String>) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_retake-server"))
            // The fake LLM lives on loopback: the operator lets the key go there.
            .args([
                "--listen",
                "127.0.0.1:0",
                "--allow-secret-host",
                "127.0.0.1",
                "--db",
            ])
            .arg(db)
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .env(KEY_VAR, format!("{KEY_PREFIX}{process}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start retake-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("retake-server listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let server = ServerProc {
            child: Some(child),
            addr: String::new(),
            process,
            spawned,
        };
        (server, rx)
    }

    /// SIGKILL, then reap the process. Returns the moment of the signal.
    pub fn kill9(&mut self) -> Instant {
        let mut child = self.child.take().expect("the process is running");
        let at = Instant::now();
        child.kill().expect("kill -9 retake-server");
        child.wait().expect("reap retake-server");
        at
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `max` bytes of a file, for failure messages.
pub fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// A read-only connection to the database file of a server that is down.
pub async fn open_db(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()))
}

/// `PRAGMA integrity_check`: `["ok"]` when the file is sound.
pub async fn integrity_check(conn: &mut SqliteConnection) -> Vec<String> {
    sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .expect("PRAGMA integrity_check")
}

/// `WORKFLOW/NODE` of every node recorded COMPLETED.
pub async fn completed_keys(conn: &mut SqliteConnection) -> HashSet<String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT r.workflow_name, n.node_id FROM node_executions n JOIN runs r ON r.pk = n.run_pk WHERE n.status = ?",
    )
    .bind(retake::v1::NodeStatus::Completed as i32)
    .fetch_all(&mut *conn)
    .await
    .expect("read completed nodes")
    .into_iter()
    .map(|(w, n)| format!("{w}/{n}"))
    .collect()
}

/// Where the test keeps its files: a temporary directory, kept (and named
/// in the failure message) when the test fails.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
}

impl Workdir {
    pub fn new() -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix("retake-faults-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        Workdir {
            dir: Some(dir),
            path,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.path.join("retake.db")
    }

    pub fn log(&self) -> PathBuf {
        self.path.join("server.log")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "fault-injection files kept in {} (database and server.log)",
                kept.display()
            );
        }
    }
}
