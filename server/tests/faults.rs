//! Fault injection: kill -9 the real server binary at random points of runs
//! with parallel branches, retries and human waits, start it again on the
//! same database every time, and keep going until every run has finished.
//!
//! The steps call a fake LLM that records every invocation outside the
//! database, so the checks do not take the server's word for anything:
//!
//! 1. no step runs again unless a kill came between its previous
//!    invocation and the new one (or the previous one failed on purpose and
//!    the retry policy retried it), and no step whose completion was on disk
//!    when the server died runs again afterwards;
//! 2. the kills interrupted attempts that were in flight;
//! 3. every run StartRun acknowledged exists afterwards and completes, and
//!    every acknowledged answer to a human wait stays answered;
//! 4. every run's events are numbered 1..N with no gap, in the database and
//!    through WatchRun, and whatever a watcher saw before a kill is still
//!    there, unchanged, afterwards;
//! 5. `PRAGMA integrity_check` is ok after every kill and at the end;
//! 6. every completed step's outputs are recorded exactly once, hold what
//!    the fake answered, and are what its consumers were given.
//!
//! Timings and shapes come from a seeded generator: `FAULTS_SEED=N` runs
//! another sequence (the seed is in every failure message).

use retake::v1 as pb;
use retake::v1::run_service_client::RunServiceClient;
use retake_test_support::DbDir;
use retake_test_support::flaky_llm::{FakeLlm, Invocation, KEY_VAR, Outcome, process_key};
use retake_test_support::process::{ServerCommand, ServerProcess, tail};
use retake_test_support::rng::{Rng, hash};
use retake_test_support::sqlite::{
    completed_nodes as completed_keys, integrity_check, open_read_only as open_db,
};
use sqlx::Connection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::{sleep, timeout};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

const AGENT: &str = "llm://openai/gpt-4o-mini";
/// Invocations of each `flaky*` node the fake fails before answering.
const FAILURES_PER_FLAKY_NODE: u32 = 2;

/// The seed: `FAULTS_SEED` (decimal or 0x-hex) or a fixed default.
fn seed() -> u64 {
    retake_test_support::rng::seed("FAULTS_SEED", 0x5EED_F417_0001)
}

// ---------------------------------------------------------------- workflows

#[derive(Clone, Debug)]
enum Kind {
    /// A call to the fake LLM; `when` names the gate decision it needs.
    Llm {
        flaky: bool,
        when: Option<&'static str>,
    },
    /// `human://approve`; the prompt tells the answerer what to decide.
    Gate { approve: bool },
}

#[derive(Clone, Debug)]
struct NodeSpec {
    id: String,
    deps: Vec<String>,
    kind: Kind,
}

impl NodeSpec {
    fn outputs(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Gate { .. } => &["decision", "feedback"],
            Kind::Llm { .. } => &["result"],
        }
    }
}

#[derive(Clone, Debug)]
struct WfSpec {
    name: String,
    nodes: Vec<NodeSpec>,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// A root, 2–4 branches of 1–3 steps (one of them often flaky), then
    /// usually an approval gate with a step for each decision, and a join.
    Mixed,
    /// A root, 6–10 parallel steps (every fourth flaky), and a join.
    FanOut,
}

fn llm(id: &str, deps: &[&str], flaky: bool, when: Option<&'static str>) -> NodeSpec {
    NodeSpec {
        id: id.to_string(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        kind: Kind::Llm { flaky, when },
    }
}

impl WfSpec {
    fn generate(name: &str, shape: Shape, rng: &mut Rng) -> WfSpec {
        let mut nodes = vec![llm("src", &[], false, None)];
        match shape {
            Shape::Mixed => {
                let branches = rng.range(2, 4);
                let flaky_branch = rng.chance(75).then(|| rng.range(0, branches - 1));
                let mut tails = Vec::new();
                for b in 0..branches {
                    let len = rng.range(1, 3);
                    let mut prev = "src".to_string();
                    for m in 0..len {
                        let flaky = flaky_branch == Some(b) && m == len - 1;
                        let id = if flaky {
                            format!("flaky_b{b}")
                        } else {
                            format!("b{b}_{m}")
                        };
                        nodes.push(llm(&id, &[&prev], flaky, None));
                        prev = id;
                    }
                    tails.push(prev);
                }
                if rng.chance(60) {
                    nodes.push(NodeSpec {
                        id: "gate".into(),
                        deps: tails,
                        kind: Kind::Gate {
                            approve: rng.chance(65),
                        },
                    });
                    nodes.push(llm("publish", &["gate"], false, Some("approved")));
                    nodes.push(llm("revise", &["gate"], false, Some("rejected")));
                    nodes.push(llm("join", &["publish", "revise"], false, None));
                } else {
                    let tails: Vec<&str> = tails.iter().map(String::as_str).collect();
                    nodes.push(llm("join", &tails, false, None));
                }
            }
            Shape::FanOut => {
                let width = rng.range(6, 10);
                let mut ids = Vec::new();
                for i in 0..width {
                    let flaky = i % 4 == 1;
                    let id = if flaky {
                        format!("flaky_f{i}")
                    } else {
                        format!("f{i}")
                    };
                    nodes.push(llm(&id, &["src"], flaky, None));
                    ids.push(id);
                }
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                nodes.push(llm("join", &ids, false, None));
            }
        }
        WfSpec {
            name: name.to_string(),
            nodes,
        }
    }

    fn yaml(&self, api_base: &str) -> String {
        let mut y = format!("name: {}\nnodes:\n", self.name);
        for n in &self.nodes {
            let _ = writeln!(y, "  {}:", n.id);
            match &n.kind {
                Kind::Gate { approve } => {
                    y.push_str("    agent: human://approve\n");
                    let decision = if *approve { "approve" } else { "reject" };
                    let _ = writeln!(y, "    system_prompt: \"decision={decision}\"");
                    y.push_str("    outputs: [decision, feedback]\n");
                }
                Kind::Llm { flaky, when } => {
                    let _ = writeln!(y, "    agent: {AGENT}");
                    let _ = writeln!(y, "    system_prompt: \"key={}/{}\"", self.name, n.id);
                    let _ = writeln!(
                        y,
                        "    config: {{api_base: \"{api_base}\", api_key: \"${{env.{KEY_VAR}}}\"}}"
                    );
                    y.push_str("    outputs: [result]\n");
                    if n.deps.is_empty() {
                        let _ = writeln!(y, "    inputs: {{seed: \"{}\"}}", self.name);
                    }
                    if *flaky {
                        y.push_str(
                            "    retry_policy: {max_retries: 10, backoff: fixed, initial_delay_ms: 50}\n",
                        );
                    }
                    if let Some(w) = when {
                        let _ = writeln!(y, "    when: \"${{gate.decision}} == {w}\"");
                    }
                }
            }
            if !n.deps.is_empty() {
                let _ = writeln!(y, "    depends_on: [{}]", n.deps.join(", "));
            }
        }
        y
    }

    fn gate_approves(&self) -> Option<bool> {
        self.nodes.iter().find_map(|n| match n.kind {
            Kind::Gate { approve } => Some(approve),
            _ => None,
        })
    }

    /// Whether `node` ends COMPLETED (else SKIPPED by its false `when`).
    fn completes(&self, node: &NodeSpec) -> bool {
        match node.kind {
            Kind::Llm {
                when: Some(when), ..
            } => self.gate_approves() == Some(when == "approved"),
            _ => true,
        }
    }
}

// ------------------------------------------------------- shared test state

/// The current server's address (None while it is down), and a channel to it.
#[derive(Clone)]
struct Link {
    addr: watch::Receiver<Option<String>>,
    cache: Arc<Mutex<Option<(String, Channel)>>>,
}

impl Link {
    /// A client for the server that is up now; None once the test ends.
    async fn client(&self) -> Option<RunServiceClient<Channel>> {
        let mut rx = self.addr.clone();
        let addr = rx.wait_for(Option::is_some).await.ok()?.clone()?;
        let mut cache = self.cache.lock().unwrap();
        if let Some((a, channel)) = cache.as_ref()
            && *a == addr
        {
            return Some(RunServiceClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        *cache = Some((addr, channel.clone()));
        Some(RunServiceClient::new(channel))
    }
}

/// An event as a watcher saw it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    sequence: i64,
    kind: i32,
    node_id: String,
    time: Option<prost_types::Timestamp>,
}

impl Seen {
    fn of(e: &pb::Event) -> Seen {
        Seen {
            sequence: e.sequence,
            kind: e.kind,
            node_id: e.node_id.clone(),
            time: e.time,
        }
    }
}

#[derive(Default)]
struct State {
    specs: HashMap<String, WfSpec>,
    runs_started: usize,
    /// (run id, workflow name) of every run StartRun acknowledged.
    acked: Vec<(String, String)>,
    /// StartRun calls that got no answer (the run may exist or not).
    unacked_starts: usize,
    /// Runs whose RUN_FINISHED a watcher saw.
    finished: HashSet<String>,
    /// What the watchers saw of each run, across restarts.
    observed: HashMap<String, Vec<Seen>>,
    /// Acknowledged answers: (run id, node id) -> approved.
    answered: HashMap<(String, String), bool>,
    /// Problems noticed while the test ran.
    problems: Vec<String>,
    /// A reason to stop the test at once.
    fatal: Option<String>,
}

struct Shared {
    link: Link,
    label: &'static str,
    api_base: String,
    shape: Shape,
    seed: u64,
    state: Mutex<State>,
    stop_starting: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn is_finished(status: i32) -> bool {
    status == pb::RunStatus::Completed as i32
        || status == pb::RunStatus::Failed as i32
        || status == pb::RunStatus::Cancelled as i32
}

/// One StartRun. Ok(Some(id)) when acknowledged (a watcher then follows the
/// run), Ok(None) when the call failed (the server may have died).
async fn start_one(sh: &Arc<Shared>, rng: &mut Rng) -> Result<Option<String>, String> {
    let name = {
        let mut st = sh.st();
        st.runs_started += 1;
        format!("{}-{:03}", sh.label, st.runs_started)
    };
    let spec = WfSpec::generate(&name, sh.shape, rng);
    let yaml = spec.yaml(&sh.api_base);
    sh.st().specs.insert(name.clone(), spec);
    let Some(mut client) = sh.link.client().await else {
        return Ok(None);
    };
    let req = pb::StartRunRequest {
        workflow: yaml.clone(),
        ..Default::default()
    };
    match timeout(Duration::from_secs(10), client.start_run(req)).await {
        Ok(Ok(resp)) => {
            let id = resp.into_inner().run.expect("StartRun returns the run").id;
            sh.st().acked.push((id.clone(), name));
            tokio::spawn(follow(sh.clone(), id.clone()));
            Ok(Some(id))
        }
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => Err(format!(
            "the server refused the workflow: {}\n{yaml}",
            status.message()
        )),
        _ => {
            sh.st().unacked_starts += 1;
            Ok(None)
        }
    }
}

/// Keeps `busy_runs` acknowledged runs unfinished until told to stop.
async fn starter(sh: Arc<Shared>, mut rng: Rng, busy_runs: usize, max_runs: usize) {
    while !sh.stop_starting.load(Ordering::SeqCst) {
        let (busy, started) = {
            let st = sh.st();
            let busy = st
                .acked
                .iter()
                .filter(|(id, _)| !st.finished.contains(id))
                .count();
            (busy, st.runs_started)
        };
        if busy < busy_runs && started < max_runs {
            match start_one(&sh, &mut rng).await {
                Ok(Some(_)) => {}
                Ok(None) => sleep(Duration::from_millis(30)).await,
                Err(e) => {
                    sh.st().fatal.get_or_insert(e);
                    return;
                }
            }
        }
        sleep(Duration::from_millis(rng.range(20, 250))).await;
    }
}

/// Follows a run's events across restarts, resuming after the last one
/// seen, until RUN_FINISHED.
async fn follow(sh: Arc<Shared>, run_id: String) {
    let mut last = 0i64;
    while !sh.stop.load(Ordering::SeqCst) {
        let Some(mut client) = sh.link.client().await else {
            return;
        };
        let req = pb::WatchRunRequest {
            run_id: run_id.clone(),
            after_sequence: last,
        };
        let mut stream = match timeout(Duration::from_secs(10), client.watch_run(req)).await {
            Ok(Ok(resp)) => resp.into_inner(),
            _ => {
                sleep(Duration::from_millis(30)).await;
                continue;
            }
        };
        // Until the server dies (or the stream idles): then watch again.
        while let Ok(Some(Ok(resp))) = timeout(Duration::from_secs(20), stream.next()).await {
            let Some(e) = resp.event else { continue };
            // Streamed text is live only (sequence 0), not part of the log.
            if e.sequence == 0 {
                continue;
            }
            let mut st = sh.st();
            if e.sequence != last + 1 {
                st.problems.push(format!(
                    "run {run_id}: WatchRun after sequence {last} went on with sequence {}",
                    e.sequence
                ));
            }
            last = e.sequence;
            st.observed
                .entry(run_id.clone())
                .or_default()
                .push(Seen::of(&e));
            if e.kind == pb::EventKind::RunFinished as i32 {
                st.finished.insert(run_id.clone());
                return;
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Answers one wait as its prompt says; true when acknowledged.
async fn resolve(sh: &Shared, client: &mut RunServiceClient<Channel>, w: &pb::Wait) -> bool {
    let approve = match w.prompt.as_str() {
        "decision=approve" => true,
        "decision=reject" => false,
        other => {
            sh.st().problems.push(format!(
                "run {} node {}: unexpected wait prompt {other:?}",
                w.run_id, w.node_id
            ));
            return false;
        }
    };
    let decision = if approve {
        pb::WaitDecision::Approve
    } else {
        pb::WaitDecision::Reject
    };
    let req = pb::ResolveWaitRequest {
        run_id: w.run_id.clone(),
        node_id: w.node_id.clone(),
        decision: decision as i32,
        ..Default::default()
    };
    match timeout(Duration::from_secs(10), client.resolve_wait(req)).await {
        Ok(Ok(_)) => {
            sh.st()
                .answered
                .insert((w.run_id.clone(), w.node_id.clone()), approve);
            true
        }
        _ => false,
    }
}

/// Lists pending waits. Any wait whose answer was acknowledged before the
/// listing began is a lost answer.
async fn pending_waits(sh: &Shared, client: &mut RunServiceClient<Channel>) -> Vec<pb::Wait> {
    let answered: HashSet<(String, String)> = sh.st().answered.keys().cloned().collect();
    let req = pb::ListWaitsRequest::default();
    let Ok(Ok(resp)) = timeout(Duration::from_secs(10), client.list_waits(req)).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for w in resp.into_inner().waits {
        if answered.contains(&(w.run_id.clone(), w.node_id.clone())) {
            let problem = format!(
                "run {} node {}: waits again after its answer was acknowledged",
                w.run_id, w.node_id
            );
            let mut st = sh.st();
            if !st.problems.contains(&problem) {
                st.problems.push(problem);
            }
            continue;
        }
        out.push(w);
    }
    out
}

/// Answers every wait of every run (acknowledged or not) once it has
/// waited a little, so that some kills land while runs wait.
async fn answerer(sh: Arc<Shared>) {
    let mut first_seen: HashMap<(String, String), Instant> = HashMap::new();
    while !sh.stop.load(Ordering::SeqCst) {
        if let Some(mut client) = sh.link.client().await {
            for w in pending_waits(&sh, &mut client).await {
                let key = (w.run_id.clone(), w.node_id.clone());
                let seen = *first_seen.entry(key).or_insert_with(Instant::now);
                let hold = hash(sh.seed, &format!("{}/{}", w.run_id, w.node_id)) % 600;
                if seen.elapsed() >= Duration::from_millis(hold) {
                    resolve(&sh, &mut client, &w).await;
                }
            }
        }
        sleep(Duration::from_millis(40)).await;
    }
}

// ------------------------------------------------------------------- chaos

struct Chaos {
    label: &'static str,
    kills: usize,
    /// How long a server lives before its kill, in ms.
    alive_ms: (u64, u64),
    /// Kills that come 5–80 ms after the restart, while runs resume.
    short_alive_percent: u64,
    /// Kills right after a StartRun is acknowledged.
    after_start_percent: u64,
    /// Kills right after a ResolveWait is acknowledged.
    after_answer_percent: u64,
    /// Restarts whose process is killed 1–60 ms after it starts, before
    /// it listens.
    startup_kill_percent: u64,
    shape: Shape,
    busy_runs: usize,
    max_runs: usize,
    /// Kills that must have interrupted an invocation of the fake.
    min_interrupting_kills: usize,
    /// More retake-server arguments.
    server_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Random,
    AfterStart,
    AfterAnswer,
    /// Before the process printed its address.
    DuringStartup,
}

/// What a server left on disk when it was killed: the integrity check's
/// complaints, and the steps recorded COMPLETED.
async fn look(
    db: &std::path::Path,
    process: usize,
    integrity: &mut Vec<String>,
    on_disk_at_kill: &mut Vec<(usize, HashSet<String>)>,
) {
    let mut conn = open_db(db).await;
    let check = integrity_check(&mut conn).await;
    if check != ["ok"] {
        integrity.push(format!(
            "after the kill of server process {process}: {check:?}"
        ));
    }
    on_disk_at_kill.push((process, completed_keys(&mut conn).await));
    let _ = conn.close().await;
}

struct Kill {
    process: usize,
    at: Instant,
    mode: Mode,
    in_flight: usize,
}

/// (run id, node id).
type RunNode = (String, String);
/// (output name, artifact id, content).
type Output = (String, String, String);

/// The database as the last server left it.
struct Final {
    runs: Vec<(String, String, i32)>,
    /// (status, output artifact ids, error).
    nodes: HashMap<RunNode, (i32, Vec<String>, String)>,
    artifacts: HashMap<RunNode, Vec<Output>>,
    /// run id -> [(sequence, kind, node id)].
    events: BTreeMap<String, Vec<(i64, i32, String)>>,
}

async fn read_final(conn: &mut sqlx::SqliteConnection) -> Final {
    let runs: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT id, workflow_name, status FROM runs ORDER BY pk")
            .fetch_all(&mut *conn)
            .await
            .expect("read runs");
    let mut nodes = HashMap::new();
    let rows: Vec<(String, String, i32, String, String)> = sqlx::query_as(
        "SELECT r.id, n.node_id, n.status, n.output_artifacts, COALESCE(n.error, '') FROM node_executions n JOIN runs r ON r.pk = n.run_pk",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("read node executions");
    for (run, node, status, outputs, error) in rows {
        let outputs: Vec<String> =
            serde_json::from_str(&outputs).expect("output_artifacts is JSON");
        nodes.insert((run, node), (status, outputs, error));
    }
    let mut artifacts: HashMap<RunNode, Vec<Output>> = HashMap::new();
    let rows: Vec<(String, String, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT r.id, a.node_id, a.name, a.id, c.data FROM artifacts a JOIN runs r ON r.pk = a.run_pk JOIN contents c ON c.sha256 = a.sha256",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("read artifacts");
    for (run, node, name, id, data) in rows {
        artifacts.entry((run, node)).or_default().push((
            name,
            id,
            String::from_utf8_lossy(&data).into_owned(),
        ));
    }
    let mut events: BTreeMap<String, Vec<(i64, i32, String)>> = BTreeMap::new();
    let rows: Vec<(String, i64, i32, String)> = sqlx::query_as(
        "SELECT r.id, e.sequence, e.kind, COALESCE(e.node_id, '') FROM events e JOIN runs r ON r.pk = e.run_pk ORDER BY r.pk, e.sequence",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("read events");
    for (run, seq, kind, node) in rows {
        events.entry(run).or_default().push((seq, kind, node));
    }
    Final {
        runs,
        nodes,
        artifacts,
        events,
    }
}

/// Server process `process` (0, 1, …) over the shared database, with an
/// API key of its own: the fake knows which process sent each request.
fn server_command(
    db: &std::path::Path,
    process: usize,
    log: &std::path::Path,
    args: &[String],
) -> ServerCommand {
    // The fake LLM lives on loopback: the operator lets the key go there.
    ServerCommand::new(db)
        .args(["--allow-secret-host", "127.0.0.1"])
        .args(args)
        .env(KEY_VAR, process_key(process))
        .log(log)
}

async fn spawn_server(
    db: std::path::PathBuf,
    process: usize,
    log: std::path::PathBuf,
    args: Vec<String>,
) -> ServerProcess {
    tokio::task::spawn_blocking(move || server_command(&db, process, &log, &args).spawn())
        .await
        .expect("spawn retake-server")
}

/// Every run the server knows of.
async fn all_runs(client: &mut RunServiceClient<Channel>) -> Vec<pb::Run> {
    let req = pb::ListRunsRequest {
        page_size: 1000,
        ..Default::default()
    };
    timeout(Duration::from_secs(10), client.list_runs(req))
        .await
        .expect("ListRuns answers")
        .expect("ListRuns")
        .into_inner()
        .runs
}

async fn events_from_zero(client: &mut RunServiceClient<Channel>, run_id: &str) -> Vec<pb::Event> {
    let req = pb::WatchRunRequest {
        run_id: run_id.to_string(),
        after_sequence: 0,
    };
    let mut stream = client.watch_run(req).await.expect("WatchRun").into_inner();
    let mut out = Vec::new();
    while let Some(item) = timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a finished run's events arrive")
    {
        out.push(item.expect("event").event.expect("event set"));
    }
    out
}

async fn chaos(cfg: Chaos) {
    let base_seed = seed();
    let seed = base_seed ^ hash(0, cfg.label);
    let began = Instant::now();
    let work = DbDir::kept_on_failure("retake-faults-");
    let (db, log) = (work.db(), work.log());
    let fake = FakeLlm::start(seed, FAILURES_PER_FLAKY_NODE).await;
    let (addr_tx, addr_rx) = watch::channel(None::<String>);
    let sh = Arc::new(Shared {
        link: Link {
            addr: addr_rx,
            cache: Arc::default(),
        },
        label: cfg.label,
        api_base: fake.api_base(),
        shape: cfg.shape,
        seed,
        state: Mutex::default(),
        stop_starting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let context = |what: &str| {
        format!(
            "{what}\n[{}: rerun with FAULTS_SEED={base_seed:#x}; files in {}; server log tail:]\n{}",
            cfg.label,
            work.path().display(),
            tail(&log, 3000)
        )
    };

    let mut rng = Rng::new(seed);
    let mut server = spawn_server(db.clone(), 0, log.clone(), cfg.server_args.clone()).await;
    let mut current = 0;
    let mut spawns = vec![server.spawned()];
    addr_tx.send_replace(Some(server.addr().to_string()));
    let starter_task = tokio::spawn(starter(
        sh.clone(),
        Rng::new(seed ^ 1),
        cfg.busy_runs,
        cfg.max_runs,
    ));
    let answerer_task = tokio::spawn(answerer(sh.clone()));

    // Kill, look at the file, restart.
    let mut kills: Vec<Kill> = Vec::new();
    let mut on_disk_at_kill: Vec<(usize, HashSet<String>)> = Vec::new();
    let mut integrity: Vec<String> = Vec::new();
    while kills.len() < cfg.kills {
        if let Some(fatal) = sh.st().fatal.clone() {
            panic!("{}", context(&fatal));
        }
        let roll = rng.range(0, 99);
        let mut mode = if roll < cfg.after_start_percent {
            Mode::AfterStart
        } else if roll < cfg.after_start_percent + cfg.after_answer_percent {
            Mode::AfterAnswer
        } else {
            Mode::Random
        };
        let alive = if rng.chance(cfg.short_alive_percent) {
            rng.range(5, 80)
        } else {
            rng.range(cfg.alive_ms.0, cfg.alive_ms.1)
        };
        sleep(Duration::from_millis(alive)).await;
        match mode {
            Mode::AfterStart => {
                let started = start_one(&sh, &mut rng)
                    .await
                    .unwrap_or_else(|e| panic!("{}", context(&e)));
                if started.is_none() {
                    mode = Mode::Random;
                }
            }
            Mode::AfterAnswer => {
                let mut answered = false;
                if let Some(mut client) = sh.link.client().await
                    && let Some(w) = pending_waits(&sh, &mut client).await.into_iter().next()
                {
                    answered = resolve(&sh, &mut client, &w).await;
                }
                if !answered {
                    mode = Mode::Random;
                }
            }
            Mode::Random | Mode::DuringStartup => {}
        }
        addr_tx.send_replace(None);
        let process = current;
        let in_flight = fake.in_flight();
        let at = server.kill9();
        kills.push(Kill {
            process,
            at,
            mode,
            in_flight,
        });
        look(&db, process, &mut integrity, &mut on_disk_at_kill).await;
        let mut next = process + 1;
        // Sometimes the next process dies too, before it listens: while it
        // opens the database or resumes the runs.
        while kills.len() < cfg.kills && rng.chance(cfg.startup_kill_percent) {
            let mut early = server_command(&db, next, &log, &cfg.server_args).start();
            spawns.push(early.spawned());
            sleep(Duration::from_millis(rng.range(1, 60))).await;
            let in_flight = fake.in_flight();
            let at = early.kill9();
            kills.push(Kill {
                process: next,
                at,
                mode: Mode::DuringStartup,
                in_flight,
            });
            look(&db, next, &mut integrity, &mut on_disk_at_kill).await;
            next += 1;
        }
        server = spawn_server(db.clone(), next, log.clone(), cfg.server_args.clone()).await;
        current = next;
        spawns.push(server.spawned());
        addr_tx.send_replace(Some(server.addr().to_string()));
    }
    let chaos_done = began.elapsed();

    // Let the last server finish everything, answering waits as they come.
    sh.stop_starting.store(true, Ordering::SeqCst);
    let _ = starter_task.await;
    let drain_deadline = Instant::now() + Duration::from_secs(90);
    let mut client = sh.link.client().await.expect("server up");
    loop {
        if let Some(fatal) = sh.st().fatal.clone() {
            panic!("{}", context(&fatal));
        }
        let watchers_done = {
            let st = sh.st();
            st.acked.iter().all(|(id, _)| st.finished.contains(id))
        };
        if watchers_done {
            let runs = all_runs(&mut client).await;
            if runs.iter().all(|r| is_finished(r.status)) {
                break;
            }
        }
        if Instant::now() > drain_deadline {
            let runs = all_runs(&mut client).await;
            let mut report = String::from("runs did not finish within 90 s of the last kill:\n");
            for r in runs.iter().filter(|r| !is_finished(r.status)) {
                let got = client
                    .get_run(pb::GetRunRequest {
                        run_id: r.id.clone(),
                        include_nodes: true,
                        include_workflow: false,
                    })
                    .await
                    .map(|g| g.into_inner().nodes)
                    .unwrap_or_default();
                let _ = writeln!(
                    report,
                    "  {} ({}) status {}: {}",
                    r.id,
                    r.workflow_name,
                    r.status,
                    got.iter()
                        .map(|n| format!("{}={}", n.node_id, n.status))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            panic!("{}", context(&report));
        }
        sleep(Duration::from_millis(200)).await;
    }
    sh.stop.store(true, Ordering::SeqCst);
    let _ = answerer_task.await;

    // What the API says at the end, then what the file says.
    let api_runs = all_runs(&mut client).await;
    // A run's usage is its nodes' usage, whichever process ran them.
    for r in &api_runs {
        let got = client
            .get_run(pb::GetRunRequest {
                run_id: r.id.clone(),
                include_nodes: true,
                include_workflow: false,
            })
            .await
            .unwrap()
            .into_inner();
        let run_tokens = got.run.and_then(|r| r.usage).map_or(0, |u| u.input_tokens);
        let node_tokens: i64 = got
            .nodes
            .iter()
            .filter_map(|n| n.usage.as_ref())
            .map(|u| u.input_tokens)
            .sum();
        assert_eq!(
            run_tokens,
            node_tokens,
            "{}",
            context(&format!("run {} counts its nodes' tokens", r.id))
        );
    }
    let mut api_events: HashMap<String, Vec<pb::Event>> = HashMap::new();
    for r in &api_runs {
        api_events.insert(r.id.clone(), events_from_zero(&mut client, &r.id).await);
    }
    drop(client);
    addr_tx.send_replace(None);
    server.kill9();
    let mut conn = open_db(&db).await;
    let check = integrity_check(&mut conn).await;
    if check != ["ok"] {
        integrity.push(format!("at the end: {check:?}"));
    }
    let fin = read_final(&mut conn).await;
    let _ = conn.close().await;
    let invocations = fake.log();
    let st = std::mem::take(&mut *sh.st());

    let mut problems: Vec<String> = st.problems.clone();
    problems.extend(
        integrity
            .iter()
            .map(|p| format!("integrity_check failed {p}")),
    );

    // Which process sent each invocation: the key it carried, else the
    // process that was up when it arrived.
    let mut unattributed = 0;
    let process_of = |inv: &Invocation| -> usize {
        inv.process
            .unwrap_or_else(|| spawns.iter().rposition(|s| *s <= inv.start).unwrap_or(0))
    };
    let mut by_key: BTreeMap<String, Vec<(usize, &Invocation)>> = BTreeMap::new();
    for inv in &invocations {
        if inv.process.is_none() {
            unattributed += 1;
        }
        by_key
            .entry(inv.key.clone())
            .or_default()
            .push((process_of(inv), inv));
    }
    for list in by_key.values_mut() {
        list.sort_by_key(|(p, inv)| (*p, inv.start));
    }

    // (1) A step runs again only after a kill or a deliberate failure.
    for (key, list) in &by_key {
        for pair in list.windows(2) {
            let ((pa, a), (pb_, b)) = (pair[0], pair[1]);
            if a.outcome == Outcome::Failed || pb_ > pa {
                continue;
            }
            problems.push(format!(
                "{key} ran again with no kill in between: invocation #{} ({:?}) and #{} both by server process {pa}",
                a.n, a.outcome, b.n
            ));
        }
    }
    // (1) … and never after its completion was on disk.
    for (process, on_disk) in &on_disk_at_kill {
        for key in on_disk {
            for (p, inv) in by_key.get(key).into_iter().flatten() {
                if p > process {
                    problems.push(format!(
                        "{key} was recorded COMPLETED when server process {process} was killed, yet process {p} invoked it again (#{})",
                        inv.n
                    ));
                }
            }
        }
    }

    // (2) The kills interrupted attempts in flight.
    let mut interrupting = 0;
    let mut interrupted_then_rerun = 0;
    for kill in &kills {
        let cut: Vec<&Invocation> = invocations
            .iter()
            .filter(|inv| {
                process_of(inv) == kill.process && inv.end.is_none_or(|end| end > kill.at)
            })
            .collect();
        if !cut.is_empty() {
            interrupting += 1;
        }
        interrupted_then_rerun += cut
            .iter()
            .filter(|inv| {
                inv.outcome != Outcome::Failed
                    && by_key[&inv.key].iter().any(|(p, _)| *p > kill.process)
            })
            .count();
    }
    if interrupting < cfg.min_interrupting_kills {
        problems.push(format!(
            "only {interrupting} of {} kills interrupted an invocation in flight (at least {} expected)",
            kills.len(),
            cfg.min_interrupting_kills
        ));
    }
    if interrupted_then_rerun == 0 {
        problems.push("no interrupted invocation was invoked again after a restart".into());
    }

    // (3) Acknowledged runs exist and complete; so does every other run.
    let db_runs: HashMap<&str, (&str, i32)> = fin
        .runs
        .iter()
        .map(|(id, name, status)| (id.as_str(), (name.as_str(), *status)))
        .collect();
    for (id, name) in &st.acked {
        match db_runs.get(id.as_str()) {
            None => problems.push(format!(
                "acknowledged run {id} ({name}) is not in the database"
            )),
            Some((_, status)) if *status != pb::RunStatus::Completed as i32 => problems.push(
                format!("acknowledged run {id} ({name}) ended with status {status}, not COMPLETED"),
            ),
            Some(_) => {}
        }
    }
    if api_runs.len() != fin.runs.len() {
        problems.push(format!(
            "ListRuns returned {} runs, the database holds {}",
            api_runs.len(),
            fin.runs.len()
        ));
    }

    let answer_of: HashMap<String, &Invocation> = invocations
        .iter()
        .filter_map(|inv| match &inv.outcome {
            Outcome::Answered(content) => Some((content.clone(), inv)),
            _ => None,
        })
        .collect();
    let mut retry_events = 0;
    for (run_id, name, status) in &fin.runs {
        let Some(spec) = st.specs.get(name) else {
            problems.push(format!("run {run_id} has unknown workflow {name}"));
            continue;
        };
        if *status != pb::RunStatus::Completed as i32 {
            problems.push(format!(
                "run {run_id} ({name}) ended with status {status}, not COMPLETED"
            ));
        }
        let output = |node: &str| -> Option<&Vec<Output>> {
            fin.artifacts.get(&(run_id.clone(), node.to_string()))
        };
        // (6) Outputs recorded once, as answered, and as consumed.
        for node in &spec.nodes {
            let key = format!("{name}/{}", node.id);
            let Some((status, output_ids, error)) =
                fin.nodes.get(&(run_id.clone(), node.id.clone()))
            else {
                problems.push(format!("run {run_id}: node {} has no record", node.id));
                continue;
            };
            let arts = output(&node.id).cloned().unwrap_or_default();
            if !spec.completes(node) {
                if *status != pb::NodeStatus::Skipped as i32 {
                    problems.push(format!("{key}: status {status}, expected SKIPPED"));
                }
                if !arts.is_empty() {
                    problems.push(format!("{key}: skipped, yet has {} artifacts", arts.len()));
                }
                if by_key.contains_key(&key) {
                    problems.push(format!("{key}: skipped, yet the fake was invoked for it"));
                }
                continue;
            }
            if *status != pb::NodeStatus::Completed as i32 {
                problems.push(format!(
                    "{key}: status {status}, expected COMPLETED; error: {error}"
                ));
                continue;
            }
            let mut names: Vec<&str> = arts.iter().map(|(n, _, _)| n.as_str()).collect();
            names.sort();
            let mut expected: Vec<&str> = node.outputs().to_vec();
            expected.sort();
            let mut ids: Vec<&String> = arts.iter().map(|(_, id, _)| id).collect();
            ids.sort();
            let mut recorded: Vec<&String> = output_ids.iter().collect();
            recorded.sort();
            if names != expected || ids != recorded {
                problems.push(format!(
                    "{key}: outputs recorded {names:?} as artifacts {ids:?}, the node record lists {recorded:?}; expected each of {expected:?} once"
                ));
                continue;
            }
            match node.kind {
                Kind::Gate { approve } => {
                    let decision = &arts.iter().find(|a| a.0 == "decision").unwrap().2;
                    let want = if approve { "approved" } else { "rejected" };
                    if decision != want {
                        problems.push(format!("{key}: decision {decision:?}, answered {want:?}"));
                    }
                    if let Some(acked) = st.answered.get(&(run_id.clone(), node.id.clone()))
                        && *acked != approve
                    {
                        problems.push(format!("{key}: acknowledged answer differs from the spec"));
                    }
                }
                Kind::Llm { .. } => {
                    let content = &arts[0].2;
                    let Some(inv) = answer_of.get(content).filter(|i| i.key == key) else {
                        problems.push(format!(
                            "{key}: recorded output {content:?} is no answer the fake gave for it"
                        ));
                        continue;
                    };
                    for dep in &node.deps {
                        let Some(dep_arts) = output(dep) else {
                            continue;
                        };
                        for (_, _, dep_content) in dep_arts.iter().filter(|a| !a.2.is_empty()) {
                            if !inv.user.contains(dep_content.as_str()) {
                                problems.push(format!(
                                    "{key}: its recorded output came from invocation #{} which was given {:?}, not {dep}'s recorded output {dep_content:?}",
                                    inv.n, inv.user
                                ));
                            }
                        }
                    }
                }
            }
        }

        // (4) Events gap-free on disk and through WatchRun, and what the
        // watchers saw unchanged.
        let on_disk = fin.events.get(run_id).cloned().unwrap_or_default();
        let seqs: Vec<i64> = on_disk.iter().map(|e| e.0).collect();
        if seqs != (1..=seqs.len() as i64).collect::<Vec<_>>() {
            problems.push(format!(
                "run {run_id}: event sequences on disk are not 1..N: {seqs:?}"
            ));
        }
        let finished: Vec<usize> = on_disk
            .iter()
            .enumerate()
            .filter(|(_, e)| e.1 == pb::EventKind::RunFinished as i32)
            .map(|(i, _)| i)
            .collect();
        if finished != [on_disk.len().saturating_sub(1)] {
            problems.push(format!(
                "run {run_id}: RUN_FINISHED at positions {finished:?} of {} events",
                on_disk.len()
            ));
        }
        for node in &spec.nodes {
            let kind = if matches!(node.kind, Kind::Gate { .. }) {
                pb::EventKind::WaitResolved
            } else {
                pb::EventKind::NodeCompleted
            };
            let completions = on_disk
                .iter()
                .filter(|e| e.1 == pb::EventKind::NodeCompleted as i32 && e.2 == node.id)
                .count();
            let expected = usize::from(spec.completes(node));
            if completions != expected {
                problems.push(format!(
                    "{name}/{}: {completions} NODE_COMPLETED events, expected {expected}",
                    node.id
                ));
            }
            if kind == pb::EventKind::WaitResolved {
                let resolved = on_disk
                    .iter()
                    .filter(|e| e.1 == kind as i32 && e.2 == node.id)
                    .count();
                if resolved != 1 {
                    problems.push(format!(
                        "{name}/{}: {resolved} WAIT_RESOLVED events",
                        node.id
                    ));
                }
            }
        }
        retry_events += on_disk
            .iter()
            .filter(|e| e.1 == pb::EventKind::NodeRetrying as i32)
            .count();
        let api: Vec<Seen> = api_events
            .get(run_id)
            .into_iter()
            .flatten()
            .map(Seen::of)
            .collect();
        let api_short: Vec<(i64, i32, String)> = api
            .iter()
            .map(|s| (s.sequence, s.kind, s.node_id.clone()))
            .collect();
        if api_short != on_disk {
            problems.push(format!(
                "run {run_id}: WatchRun from 0 returned {} events that differ from the {} on disk",
                api_short.len(),
                on_disk.len()
            ));
        }
        for seen in st.observed.get(run_id).into_iter().flatten() {
            match api.get(seen.sequence as usize - 1) {
                Some(now) if now == seen => {}
                other => problems.push(format!(
                    "run {run_id}: a watcher saw {seen:?} before a kill; at the end that sequence holds {other:?}"
                )),
            }
        }
    }
    for inv in &invocations {
        let (name, _) = inv.key.rsplit_once('/').unwrap_or_default();
        if !fin.runs.iter().any(|(_, n, _)| n == name) {
            problems.push(format!(
                "the fake was invoked for {} of no recorded run",
                inv.key
            ));
        }
    }
    let deliberate_failures = invocations
        .iter()
        .filter(|i| i.outcome == Outcome::Failed)
        .count();
    let flaky_steps = st
        .specs
        .values()
        .flat_map(|s| &s.nodes)
        .filter(|n| matches!(n.kind, Kind::Llm { flaky: true, .. }))
        .count();
    if flaky_steps > 0 && (deliberate_failures == 0 || retry_events == 0) {
        problems.push(format!(
            "retries were not exercised: {deliberate_failures} deliberate failures, {retry_events} NODE_RETRYING events"
        ));
    }

    let mode_count = |m: Mode| kills.iter().filter(|k| k.mode == m).count();
    let summary = format!(
        "{}: {} kills in {:.1} s ({} random, {} right after StartRun, {} right after ResolveWait, {} before listening; {} with the fake answering at that moment, {} interrupted an invocation per the log), {} invocations re-run after a kill; {} runs ({} acknowledged, {} StartRun calls unanswered), {} invocations of the fake ({} deliberate failures, {} without a process key), {} NODE_RETRYING events, {} answers acknowledged; {:.1} s in all",
        cfg.label,
        kills.len(),
        chaos_done.as_secs_f64(),
        mode_count(Mode::Random),
        mode_count(Mode::AfterStart),
        mode_count(Mode::AfterAnswer),
        mode_count(Mode::DuringStartup),
        kills.iter().filter(|k| k.in_flight > 0).count(),
        interrupting,
        interrupted_then_rerun,
        fin.runs.len(),
        st.acked.len(),
        st.unacked_starts,
        invocations.len(),
        deliberate_failures,
        unattributed,
        retry_events,
        st.answered.len(),
        began.elapsed().as_secs_f64(),
    );
    eprintln!("{summary}");
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(40).collect();
        panic!(
            "{}",
            context(&format!(
                "{} problems after kill -9 at random points:\n  {}\n{summary}",
                problems.len(),
                shown
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ))
        );
    }
    drop(work);
}

/// Runs with 2–4 parallel branches, a flaky step retried by its policy,
/// and approval gates answered through ResolveWait; 32 kills, some right
/// after StartRun or ResolveWait was acknowledged, some during recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_of_runs_with_branches_retries_and_waits() {
    chaos(Chaos {
        label: "mixed",
        kills: 60,
        alive_ms: (60, 1100),
        short_alive_percent: 15,
        after_start_percent: 15,
        after_answer_percent: 20,
        startup_kill_percent: 10,
        shape: Shape::Mixed,
        busy_runs: 5,
        max_runs: 400,
        min_interrupting_kills: 10,
        server_args: Vec::new(),
    })
    .await;
}

/// Wide fan-outs (6–10 steps at once) and short-lived servers: most kills
/// land while the previous kill's interrupted steps are being resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_storm_on_wide_fan_outs_while_runs_resume() {
    chaos(Chaos {
        label: "fanout",
        kills: 30,
        alive_ms: (20, 400),
        short_alive_percent: 30,
        after_start_percent: 10,
        after_answer_percent: 0,
        startup_kill_percent: 25,
        shape: Shape::FanOut,
        busy_runs: 3,
        max_runs: 200,
        min_interrupting_kills: 5,
        server_args: vec!["--max-parallel-nodes".into(), "3".into()],
    })
    .await;
}
