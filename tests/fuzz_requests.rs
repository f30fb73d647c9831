//! Property tests of the gRPC surface against a real server: random
//! StartRun, ReplayRun, GetRun, ListRuns, WatchRun, ResolveWait and
//! GetArtifact requests, as messages and as raw bytes (including strings
//! that are not UTF-8, which prost cannot build). Properties:
//!
//! - bad input is answered with a client error (INVALID_ARGUMENT,
//!   NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, OUT_OF_RANGE),
//!   never INTERNAL, UNKNOWN or a broken connection, and with a message;
//! - a refused request leaves every row of every table as it was;
//! - the server keeps serving afterwards.
//!
//! Cases per run: 250 requests and 300 raw bodies, each against its own
//! server, in 5 to 15 s on two cores in a debug build. Failures are kept in
//! tests/proptest-regressions/fuzz_requests.txt.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use prost::Message;
use retake::v1 as pb;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/fuzz_requests.txt"
        )))),
        max_shrink_iters: 64,
        max_shrink_time: 60_000,
        ..Config::default()
    }
}

/// Codes that say the request, not the server, is at fault.
const CLIENT_ERRORS: &[Code] = &[
    Code::InvalidArgument,
    Code::NotFound,
    Code::FailedPrecondition,
    Code::ResourceExhausted,
    Code::OutOfRange,
    Code::AlreadyExists,
];

/// Longest any one call may take, huge requests included.
const CALL_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------
// The database, row by row.

type Digest = BTreeMap<String, Vec<String>>;

/// Every row of every table, as text, read through a separate read-only
/// connection (the server writes in WAL mode). Values over 8 KiB are
/// represented by their length and their first and last 2 KiB.
async fn digest(conn: &mut sqlx::SqliteConnection) -> Digest {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .expect("tables");
    let mut out = Digest::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut *conn)
                .await
                .expect("columns");
        let row = columns
            .iter()
            .map(|c| {
                // Long values by length, start and end, to keep this cheap.
                format!(
                    "CASE WHEN length(\"{c}\") > 8192 \
                     THEN 'len ' || length(\"{c}\") || ' ' || quote(substr(\"{c}\", 1, 2048)) || quote(substr(\"{c}\", -2048)) \
                     ELSE quote(\"{c}\") END"
                )
            })
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT {row} FROM \"{table}\" ORDER BY 1"))
                .fetch_all(&mut *conn)
                .await
                .expect("rows");
        out.insert(table, rows);
    }
    out
}

fn describe_change(before: &Digest, after: &Digest) -> String {
    let mut out = Vec::new();
    for (table, rows) in after {
        let old = before.get(table).cloned().unwrap_or_default();
        if &old != rows {
            let added: Vec<&String> = rows.iter().filter(|r| !old.contains(r)).take(3).collect();
            let removed: Vec<&String> = old.iter().filter(|r| !rows.contains(r)).take(3).collect();
            let cut = |v: Vec<&String>| {
                v.iter()
                    .map(|r| r.chars().take(300).collect::<String>())
                    .collect::<Vec<_>>()
            };
            out.push(format!(
                "{table}: {} -> {} rows; added {:?}; removed {:?}",
                old.len(),
                rows.len(),
                cut(added),
                cut(removed)
            ));
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------
// The server and what is known to exist in it.

struct Fixture {
    server: TestServer,
    conn: sqlx::SqliteConnection,
    runs: Vec<String>,
    /// Runs waiting for a person, with the waiting node.
    waiting: Vec<(String, String)>,
    artifacts: Vec<String>,
    node_executions: Vec<String>,
    refused: BTreeMap<String, usize>,
    accepted: BTreeMap<String, usize>,
}

const DONE: &str = "name: done\nnodes:\n  a: {agent: local://echo, inputs: {text: hi}, outputs: [result]}\n  b: {agent: local://mock, depends_on: [a], inputs: {x: \"${a.result}\"}, config: {response: ok}, outputs: [result]}\n";
const FAILS: &str = "name: fails\nnodes:\n  a: {agent: local://fail, config: {times: 5}, outputs: [result]}\n  b: {agent: local://echo, depends_on: [a], outputs: [result]}\n";
const APPROVE: &str = "name: gate\nnodes:\n  a: {agent: local://echo, inputs: {text: draft}, outputs: [result]}\n  review: {agent: \"human://approve\", depends_on: [a], inputs: {draft: \"${a.result}\"}, outputs: [decision]}\n";
const INPUT: &str = "name: ask\nnodes:\n  ask: {agent: \"human://input\", outputs: [answer]}\n";

impl Fixture {
    async fn new() -> Self {
        let mut server = start().await;
        // The database exists once the server answers.
        server
            .runs
            .list_runs(pb::ListRunsRequest::default())
            .await
            .expect("ListRuns");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&server.db)
            .read_only(true);
        let conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .expect("read-only connection");
        let mut fx = Fixture {
            server,
            conn,
            runs: Vec::new(),
            waiting: Vec::new(),
            artifacts: Vec::new(),
            node_executions: Vec::new(),
            refused: BTreeMap::new(),
            accepted: BTreeMap::new(),
        };
        for yaml in [DONE, FAILS, DONE] {
            let run = fx.server.start_run(yaml).await;
            fx.settle(&run.id).await;
        }
        let replay = fx
            .server
            .runs
            .replay_run(pb::ReplayRunRequest {
                run_id: fx.runs[0].clone(),
                from_node: "b".into(),
                ..Default::default()
            })
            .await
            .expect("replay")
            .into_inner()
            .run
            .unwrap();
        fx.settle(&replay.id).await;
        fx.add_waits().await;
        fx
    }

    /// Starts runs that wait for a person, when none is left.
    async fn add_waits(&mut self) {
        if self.waiting.len() >= 2 {
            return;
        }
        for yaml in [APPROVE, INPUT] {
            let run = self.server.start_run(yaml).await;
            self.settle(&run.id).await;
        }
    }

    /// Settles every run a raw request may have started or resumed.
    async fn settle_all(&mut self) {
        let listed = self
            .server
            .runs
            .list_runs(pb::ListRunsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListRuns")
            .into_inner();
        for run in listed.runs {
            let quiet = matches!(
                run_status(&run),
                pb::RunStatus::Completed | pb::RunStatus::Failed | pb::RunStatus::Cancelled
            );
            if !quiet || !self.runs.contains(&run.id) {
                self.settle(&run.id).await;
            }
        }
    }

    /// Waits until the run stops changing (it ended or waits for a person),
    /// cancelling it if it keeps running, and records its ids.
    async fn settle(&mut self, run_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (run, nodes) = self.server.get(run_id).await;
            let status = run_status(&run);
            let quiet = matches!(
                status,
                pb::RunStatus::Completed
                    | pb::RunStatus::Failed
                    | pb::RunStatus::Cancelled
                    | pb::RunStatus::Waiting
            );
            if quiet {
                if !self.runs.contains(&run.id) {
                    self.runs.push(run.id.clone());
                }
                self.waiting.retain(|(r, _)| r != &run.id);
                for n in &nodes {
                    if !self.node_executions.contains(&n.id) {
                        self.node_executions.push(n.id.clone());
                    }
                    for a in n.output_artifact_ids.iter().chain(&n.input_artifact_ids) {
                        if !self.artifacts.contains(a) {
                            self.artifacts.push(a.clone());
                        }
                    }
                    if status == pb::RunStatus::Waiting
                        && self::status(n) == pb::NodeStatus::Waiting
                    {
                        self.waiting.push((run.id.clone(), n.node_id.clone()));
                    }
                }
                // Let the last writes of the run reach the database.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "run {run_id} still {status:?} after 15 s: {:?}",
                    nodes
                        .iter()
                        .map(|n| (&n.node_id, self::status(n), &n.error))
                        .collect::<Vec<_>>()
                );
                let _ = self
                    .server
                    .runs
                    .cancel_run(pb::CancelRunRequest {
                        run_id: run_id.to_string(),
                    })
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn resolve(&self, id: &Id) -> String {
        let pick = |list: &[String], i: &prop::sample::Index| {
            if list.is_empty() {
                String::new()
            } else {
                list[i.index(list.len())].clone()
            }
        };
        match id {
            Id::Run(i) => pick(&self.runs, i),
            Id::Waiting(i) => {
                let runs: Vec<String> = self.waiting.iter().map(|(r, _)| r.clone()).collect();
                pick(&runs, i)
            }
            Id::Artifact(i) => pick(&self.artifacts, i),
            Id::NodeExecution(i) => pick(&self.node_executions, i),
            Id::Prefix(inner, len) => {
                let full = self.resolve(inner);
                full.chars().take(*len).collect()
            }
            Id::Mangled(inner, text) => format!("{}{text}", self.resolve(inner)),
            Id::Text(s) => s.clone(),
        }
    }

    /// Sends one request and checks the properties.
    async fn check(&mut self, req: Req) -> Result<(), TestCaseError> {
        let before = digest(&mut self.conn).await;
        let kind = req.kind();
        let started = Instant::now();
        let outcome = tokio::time::timeout(CALL_LIMIT, self.send(req))
            .await
            .map_err(|_| TestCaseError::fail(format!("{kind} took longer than {CALL_LIMIT:?}")))?;
        match outcome {
            Ok(new_run) => {
                *self.accepted.entry(kind.to_string()).or_default() += 1;
                if let Some(run) = new_run {
                    self.settle(&run).await;
                }
                self.add_waits().await;
            }
            Err(status) => {
                *self
                    .refused
                    .entry(format!("{kind} {:?}", status.code()))
                    .or_default() += 1;
                prop_assert!(
                    CLIENT_ERRORS.contains(&status.code()),
                    "{kind} answered {:?} after {:?}: {}",
                    status.code(),
                    started.elapsed(),
                    status.message().chars().take(500).collect::<String>()
                );
                prop_assert!(
                    !status.message().trim().is_empty(),
                    "{kind}: an error without a message"
                );
                prop_assert!(
                    status.message().len() <= 64 * 1024,
                    "{kind}: a {} byte message",
                    status.message().len()
                );
                let after = digest(&mut self.conn).await;
                prop_assert!(
                    before == after,
                    "{kind} was refused ({:?}: {}) but changed the database:\n{}",
                    status.code(),
                    status.message().chars().take(300).collect::<String>(),
                    describe_change(&before, &after)
                );
            }
        }
        Ok(())
    }

    /// Sends a request; on success returns the id of a run it may have
    /// started or resumed.
    async fn send(&mut self, req: Req) -> Result<Option<String>, tonic::Status> {
        let mut runs = self.server.runs.clone();
        match req {
            Req::Start(r) => {
                let run = runs.start_run(r).await?.into_inner().run.unwrap();
                Ok(Some(run.id))
            }
            Req::Replay(mut r, id) => {
                r.run_id = self.resolve(&id);
                let run = runs.replay_run(r).await?.into_inner().run.unwrap();
                Ok(Some(run.id))
            }
            Req::Get(mut r, id) => {
                r.run_id = self.resolve(&id);
                runs.get_run(r).await?;
                Ok(None)
            }
            Req::List(r) => {
                runs.list_runs(r).await?;
                Ok(None)
            }
            Req::Watch(mut r, id) => {
                r.run_id = self.resolve(&id);
                let mut stream = runs.watch_run(r).await?.into_inner();
                // Waiting runs never end: read for a moment only.
                let until = tokio::time::sleep(Duration::from_millis(300));
                tokio::pin!(until);
                loop {
                    tokio::select! {
                        item = stream.next() => match item {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return Err(e),
                            None => break,
                        },
                        _ = &mut until => break,
                    }
                }
                Ok(None)
            }
            Req::Resolve(mut r, id, node) => {
                r.run_id = self.resolve(&id);
                // The waiting node by name, or left empty (the run's only wait).
                let waiting = self.waiting.iter().find(|(run, _)| run == &r.run_id);
                if let (Some(i), Some((_, n))) = (node, waiting) {
                    r.node_id = if i.index(2) == 0 {
                        n.clone()
                    } else {
                        String::new()
                    };
                }
                let resolved = runs.resolve_wait(r).await?.into_inner();
                Ok(resolved.run.map(|r| r.id))
            }
            Req::Artifact(mut r, id) => {
                r.artifact_id = self.resolve(&id);
                self.server.artifacts.get_artifact(r).await?;
                Ok(None)
            }
            Req::Raw(method, body) => {
                raw_call(&self.server, method, body).await?;
                self.settle_all().await;
                Ok(None)
            }
        }
    }

    /// The server still answers, reads and starts runs.
    async fn still_serving(&mut self) {
        let listed = self
            .server
            .runs
            .list_runs(pb::ListRunsRequest::default())
            .await
            .expect("ListRuns after the fuzzing")
            .into_inner();
        assert!(!listed.runs.is_empty());
        let run = self.server.start_run(DONE).await;
        let (run, _) = self.server.finish(&run.id).await;
        assert_eq!(run_status(&run), pb::RunStatus::Completed);
    }

    fn report(&self, name: &str) {
        eprintln!("{name}: accepted {:?}", self.accepted);
        eprintln!("{name}: refused {:?}", self.refused);
    }
}

/// Sends raw bytes as the request of `method`, reading every response
/// message (WatchRun streams).
async fn raw_call(s: &TestServer, method: &str, body: Vec<u8>) -> Result<usize, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(128 << 20);
    grpc.ready().await.unwrap();
    let mut stream = grpc
        .server_streaming::<Vec<u8>, Vec<u8>, RawCodec>(
            tonic::Request::new(body),
            method.parse().unwrap(),
            RawCodec,
        )
        .await?
        .into_inner();
    let mut count = 0;
    let until = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(until);
    loop {
        tokio::select! {
            item = stream.message() => match item? {
                Some(_) => count += 1,
                None => return Ok(count),
            },
            _ = &mut until => return Ok(count),
        }
    }
}

// ---------------------------------------------------------------------
// Requests.

/// An id: one that exists (or a prefix of it), or any text.
#[derive(Clone, Debug)]
enum Id {
    Run(prop::sample::Index),
    Waiting(prop::sample::Index),
    Artifact(prop::sample::Index),
    NodeExecution(prop::sample::Index),
    Prefix(Box<Id>, usize),
    Mangled(Box<Id>, String),
    Text(String),
}

#[derive(Clone)]
enum Req {
    Start(pb::StartRunRequest),
    Replay(pb::ReplayRunRequest, Id),
    Get(pb::GetRunRequest, Id),
    List(pb::ListRunsRequest),
    Watch(pb::WatchRunRequest, Id),
    Resolve(pb::ResolveWaitRequest, Id, Option<prop::sample::Index>),
    Artifact(pb::GetArtifactRequest, Id),
    Raw(&'static str, Vec<u8>),
}

/// Requests print with their long strings cut, so failures stay readable.
impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = match self {
            Req::Start(r) => format!("{r:?}"),
            Req::Replay(r, id) => format!("{r:?} {id:?}"),
            Req::Get(r, id) => format!("{r:?} {id:?}"),
            Req::List(r) => format!("{r:?}"),
            Req::Watch(r, id) => format!("{r:?} {id:?}"),
            Req::Resolve(r, id, node) => format!("{r:?} {id:?} {node:?}"),
            Req::Artifact(r, id) => format!("{r:?} {id:?}"),
            Req::Raw(method, body) => format!("{method} {body:?}"),
        };
        let mut out = String::new();
        let mut run = (' ', 0usize);
        for c in full.chars() {
            run = if c == run.0 { (c, run.1 + 1) } else { (c, 1) };
            if run.1 == 40 {
                out.push_str("[…]");
            } else if run.1 < 40 {
                out.push(c);
            }
        }
        let cut: String = out.chars().take(4000).collect();
        write!(f, "{}: {cut}", self.kind())
    }
}

impl Req {
    fn kind(&self) -> &'static str {
        match self {
            Req::Start(_) => "StartRun",
            Req::Replay(..) => "ReplayRun",
            Req::Get(..) => "GetRun",
            Req::List(_) => "ListRuns",
            Req::Watch(..) => "WatchRun",
            Req::Resolve(..) => "ResolveWait",
            Req::Artifact(..) => "GetArtifact",
            Req::Raw(method, _) => method,
        }
    }
}

const METHODS: &[&str] = &[
    "/retake.v1.RunService/StartRun",
    "/retake.v1.RunService/ReplayRun",
    "/retake.v1.RunService/GetRun",
    "/retake.v1.RunService/ListRuns",
    "/retake.v1.RunService/WatchRun",
    "/retake.v1.RunService/ResolveWait",
    "/retake.v1.RunService/CancelRun",
    "/retake.v1.RunService/ListWaits",
    "/retake.v1.RunService/DiffRuns",
    "/retake.v1.RunService/GetNodeExecution",
    "/retake.v1.ArtifactService/GetArtifact",
    "/retake.v1.ArtifactService/ListArtifacts",
    "/retake.v1.ArtifactService/GetArtifactLineage",
    "/retake.v1.WorkflowService/ValidateWorkflow",
];

/// URL-safe base64 without padding, as ListRuns page tokens are written.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
        }
    }
    out
}

fn odd_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", " ", "latest", "a", "b", "review", "ask", "result", "decision", "answer", "-",
            "%", "_", "*", "run_", "..", "../", "\u{0}", "é", "🦀", "'", "\"", "'; DROP TABLE runs; --",
            "a%", "%a%", "\\", "\n", "${a.result}", "local://echo", "approve", "true", "null",
            "p.md", "v",
        ])
        .prop_map(String::from),
        2 => "[a-z0-9_-]{0,12}",
        1 => any::<String>(),
        1 => "\\PC{0,40}",
    ]
    .boxed()
}

fn big_text() -> BoxedStrategy<String> {
    prop_oneof![
        20 => odd_text(),
        1 => (1usize..300_000, odd_text()).prop_map(|(n, s)| {
            let unit = if s.is_empty() { "x".to_string() } else { s };
            unit.repeat(n / unit.len() + 1)
        }),
        1 => prop_oneof![Just(8 << 20), Just(9 << 20), 7_000_000usize..9_000_000]
            .prop_map(|n| "y".repeat(n)),
    ]
    .boxed()
}

fn id() -> BoxedStrategy<Id> {
    let known = prop_oneof![
        any::<prop::sample::Index>().prop_map(Id::Run),
        any::<prop::sample::Index>().prop_map(Id::Waiting),
        any::<prop::sample::Index>().prop_map(Id::Artifact),
        any::<prop::sample::Index>().prop_map(Id::NodeExecution),
    ];
    prop_oneof![
        4 => known.clone(),
        2 => (known.clone(), 0usize..12).prop_map(|(k, n)| Id::Prefix(Box::new(k), n)),
        1 => (known, odd_text()).prop_map(|(k, s)| Id::Mangled(Box::new(k), s)),
        3 => big_text().prop_map(Id::Text),
    ]
    .boxed()
}

fn string_map() -> BoxedStrategy<std::collections::HashMap<String, String>> {
    prop::collection::hash_map(odd_text(), big_text(), 0..4).boxed()
}

/// Workflow text: the seeded workflows, mangled ones, random text, YAML
/// bombs and oversized documents.
fn workflow() -> BoxedStrategy<String> {
    let base = prop::sample::select(vec![
        DONE,
        FAILS,
        APPROVE,
        INPUT,
        "name: x\nnodes:\n  a: {agent: local://nope, outputs: [o]}\n",
        "name: x\nnodes:\n  a: {agent: local://echo, outputs: [o], depends_on: [a]}\n",
        "name: x\nnodes:\n  a: {agent: local://echo, outputs: [o], inputs: {x: \"${user.v}\"}}\n",
        "name: x\nnodes:\n  a: {agent: local://echo, outputs: [o], config: {api_key: \"${env.HOME}\"}}\n",
        "name: x\nnodes:\n  a: {agent: local://echo, outputs: [o], system_prompt: \"file://p.md\"}\n",
        "name: x\nnodes:\n  a: {agent: \"a2a://http://127.0.0.1:1/\", outputs: [o]}\n",
        "name: x\nnodes:\n  a: {agent: local://sleep, config: {ms: 5}, outputs: [o]}\n",
        "{\"name\": \"j\", \"nodes\": {\"a\": {\"agent\": \"local://echo\", \"outputs\": [\"o\"]}}}",
        "",
        "   ",
        "[]",
        "name: x\nnodes: {}\n",
    ]);
    prop_oneof![
        6 => (base.clone(), prop::collection::vec((any::<prop::sample::Index>(), odd_text()), 0..3))
            .prop_map(|(base, edits)| {
                let mut text = base.to_string();
                for (at, piece) in edits {
                    let cuts: Vec<usize> = text
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain([text.len()])
                        .collect();
                    text.insert_str(cuts[at.index(cuts.len())], &piece);
                }
                text
            }),
        2 => base.prop_map(String::from),
        1 => big_text(),
        1 => (1usize..100_000).prop_map(|n| format!("name: deep\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: {}{}}}}}\n", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..5_000).prop_map(|n| format!("name: bomb\nnodes:\n  a:\n    agent: local://echo\n    outputs: [o]\n    inputs:\n      b: &b [{}]\n      c: [{}]\n", vec!["x"; n].join(","), vec!["*b"; n].join(","))),
        1 => (1usize..200_000, prop::sample::select(vec!["when", "agent", "id"])).prop_map(|(n, place)| {
            let big = "w".repeat(n);
            match place {
                "when" => format!("name: x\nnodes:\n  a: {{agent: local://echo, outputs: [o], when: \"{big}\"}}\n"),
                "agent" => format!("name: x\nnodes:\n  a: {{agent: \"{big}\", outputs: [o]}}\n"),
                _ => format!("name: x\nnodes:\n  \"{big}.\": {{agent: local://echo, outputs: [o]}}\n"),
            }
        }),
    ]
    .boxed()
}

fn request() -> BoxedStrategy<Req> {
    let start =
        (workflow(), string_map(), string_map()).prop_map(|(workflow, variables, files)| {
            Req::Start(pb::StartRunRequest {
                workflow,
                variables,
                files,
                request_id: String::new(),
            })
        });
    let replay = (
        id(),
        prop_oneof![3 => Just(String::new()), 1 => workflow()],
        (string_map(), odd_text()),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(
                (
                    prop_oneof![Just("b".to_string()), odd_text()],
                    prop_oneof![Just("local://echo".to_string()), odd_text()],
                ),
                1..3,
            ),
        ],
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(
                (
                    prop_oneof![Just("a".to_string()), odd_text()],
                    prop_oneof![Just(String::new()), odd_text()],
                    big_text(),
                ),
                1..3,
            ),
        ],
        string_map(),
        any::<bool>(),
    )
        .prop_map(
            |(id, workflow, (files, from), swaps, overrides, variables, allow_drift)| {
                Req::Replay(
                    pb::ReplayRunRequest {
                        run_id: String::new(),
                        workflow,
                        files,
                        from_node: from,
                        swaps: swaps
                            .into_iter()
                            .map(|(node_id, agent)| pb::AgentSwap { node_id, agent })
                            .collect(),
                        overrides: overrides
                            .into_iter()
                            .map(|(selector, output, value)| pb::OutputOverride {
                                selector,
                                output,
                                value,
                                ..Default::default()
                            })
                            .collect(),
                        variables,
                        request_id: String::new(),
                        allow_drift,
                        ..Default::default()
                    },
                    id,
                )
            },
        );
    let get =
        (id(), any::<bool>(), any::<bool>()).prop_map(|(id, include_nodes, include_workflow)| {
            Req::Get(
                pb::GetRunRequest {
                    run_id: String::new(),
                    include_nodes,
                    include_workflow,
                },
                id,
            )
        });
    let token = prop_oneof![
        2 => Just(String::new()),
        1 => big_text(),
        1 => prop_oneof![any::<i64>().prop_map(|n| format!("runs:{n}")), odd_text().prop_map(|s| format!("runs:{s}")), odd_text()]
            .prop_map(|t| base64_url(t.as_bytes())),
    ];
    let list = (
        prop_oneof![Just(0i32), any::<i32>(), -2i32..2000],
        token,
        prop_oneof![0i32..8, any::<i32>()],
        odd_text(),
        odd_text(),
        prop_oneof![
            Just(String::new()),
            Just("status = FAILED AND create_time >= \"2026-01-01T00:00:00Z\"".to_string()),
            odd_text()
        ],
        prop_oneof![
            Just(String::new()),
            Just("create_time asc".to_string()),
            odd_text()
        ],
    )
        .prop_map(
            |(page_size, page_token, status, workflow_name, forked_from, filter, order_by)| {
                Req::List(pb::ListRunsRequest {
                    page_size,
                    page_token,
                    status,
                    workflow_name,
                    forked_from,
                    filter,
                    order_by,
                })
            },
        );
    let watch = (id(), prop_oneof![Just(0i64), any::<i64>(), -3i64..50]).prop_map(
        |(id, after_sequence)| {
            Req::Watch(
                pb::WatchRunRequest {
                    run_id: String::new(),
                    after_sequence,
                },
                id,
            )
        },
    );
    let resolve = (
        prop_oneof![3 => any::<prop::sample::Index>().prop_map(Id::Waiting), 1 => id()],
        prop::option::of(any::<prop::sample::Index>()),
        odd_text(),
        prop_oneof![Just(String::new()), big_text()],
        prop_oneof![3 => 0i32..3, 1 => any::<i32>()],
        prop_oneof![Just(String::new()), big_text()],
    )
        .prop_map(|(id, node, node_id, value, decision, feedback)| {
            Req::Resolve(
                pb::ResolveWaitRequest {
                    run_id: String::new(),
                    node_id,
                    value,
                    decision,
                    feedback,
                },
                id,
                node,
            )
        });
    let artifact = id().prop_map(|id| Req::Artifact(pb::GetArtifactRequest::default(), id));
    prop_oneof![
        3 => start,
        2 => replay,
        1 => get,
        1 => list,
        1 => watch,
        2 => resolve,
        1 => artifact,
    ]
    .boxed()
}

/// Bytes for any method: random, or a valid message with its bytes
/// flipped, cut, or a string field replaced by bytes that are not UTF-8.
fn raw_request() -> BoxedStrategy<Req> {
    let message = prop_oneof![
        Just(
            pb::StartRunRequest {
                workflow: DONE.into(),
                ..Default::default()
            }
            .encode_to_vec()
        ),
        Just(
            pb::GetRunRequest {
                run_id: "r".into(),
                include_nodes: true,
                include_workflow: true
            }
            .encode_to_vec()
        ),
        Just(
            pb::ListRunsRequest {
                page_size: 5,
                page_token: "x".into(),
                status: 3,
                workflow_name: "w".into(),
                forked_from: "f".into(),
                filter: "status = x".into(),
                order_by: "create_time".into(),
            }
            .encode_to_vec()
        ),
        Just(
            pb::WatchRunRequest {
                run_id: "r".into(),
                after_sequence: -1
            }
            .encode_to_vec()
        ),
        Just(
            pb::ResolveWaitRequest {
                run_id: "r".into(),
                node_id: "n".into(),
                value: "v".into(),
                decision: 1,
                feedback: "f".into()
            }
            .encode_to_vec()
        ),
        Just(
            pb::ReplayRunRequest {
                run_id: "r".into(),
                swaps: vec![pb::AgentSwap {
                    node_id: "a".into(),
                    agent: "local://echo".into()
                }],
                ..Default::default()
            }
            .encode_to_vec()
        ),
        Just(
            pb::GetArtifactRequest {
                artifact_id: "a".into()
            }
            .encode_to_vec()
        ),
    ];
    let not_utf8 = prop::collection::vec(
        prop_oneof![
            Just(0xffu8),
            Just(0xfe),
            Just(0xc0),
            Just(0x80),
            Just(0xed),
            any::<u8>()
        ],
        1..8,
    );
    let body = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..64),
        3 => (message.clone(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4))
            .prop_map(|(mut m, flips)| {
                if !m.is_empty() {
                    for (at, byte) in flips {
                        let i = at.index(m.len());
                        m[i] = byte;
                    }
                }
                m
            }),
        2 => (message.clone(), any::<prop::sample::Index>()).prop_map(|(m, at)| m[..at.index(m.len() + 1)].to_vec()),
        3 => (1u8..6, not_utf8, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(field, bad, tail)| {
            // Field `field` as a length-delimited string holding `bad`.
            let mut m = vec![field << 3 | 2, bad.len() as u8];
            m.extend(bad);
            m.extend(tail);
            m
        }),
        1 => (1u8..9, any::<u64>()).prop_map(|(field, n)| {
            // A varint where a string is expected, or a huge length.
            let mut m = vec![field << 3 | 2];
            let mut n = n | 0x80;
            for _ in 0..10 {
                m.push((n as u8) | 0x80);
                n >>= 7;
            }
            m.push(1);
            m
        }),
        1 => message,
    ];
    (prop::sample::select(METHODS), body)
        .prop_map(|(method, body)| Req::Raw(method, body))
        .boxed()
}

fn run_property(name: &str, cases: u32, strategy: BoxedStrategy<Req>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = RefCell::new(rt.block_on(Fixture::new()));
    let started = Instant::now();
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |req| {
        rt.block_on(fixture.borrow_mut().check(req))
    });
    let mut fx = fixture.into_inner();
    fx.report(name);
    eprintln!("{name}: {cases} cases in {:?}", started.elapsed());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    rt.block_on(fx.still_serving());
}

#[test]
fn random_requests_are_refused_cleanly_and_change_nothing() {
    run_property("requests", 250, request());
}

#[test]
fn undecodable_requests_are_refused_cleanly_and_change_nothing() {
    run_property("raw", 300, raw_request());
}

/// A refused workflow's message names each problem but quotes only the
/// start of what the caller sent, so it fits in a response header.
#[test]
fn errors_about_huge_values_stay_small() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = start().await;
        let big = "w".repeat(200_000);
        for workflow in [
            format!(
                "name: x\nnodes:\n  a: {{agent: local://echo, outputs: [o], when: \"{big}\"}}\n"
            ),
            format!("name: x\nnodes:\n  a: {{agent: \"{big}\", outputs: [o]}}\n"),
            format!("name: x\nnodes:\n  \"{big}.\": {{agent: local://echo, outputs: [o]}}\n"),
            // Hundreds of errors, in words tonic percent-encodes (spaces,
            // backticks): the message is cut to fit, not a protocol error.
            (1..=300).fold(String::from("name: many\nnodes:\n"), |y, i| {
                y + &format!("  s{i}:\n    agent: local://echo\n")
            }),
        ] {
            let err = s
                .runs
                .start_run(pb::StartRunRequest {
                    workflow,
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{}",
                err.message().chars().take(300).collect::<String>()
            );
            assert!(
                err.message().len() < 64 * 1024,
                "{} bytes",
                err.message().len()
            );
        }
    });
}
