//! Several `retake-server` processes on one PostgreSQL database: every
//! call works on every server, a run executes on one server at a time,
//! and when that server is killed another finishes its runs without
//! running a completed node again.

use retake::v1 as pb;
use retake_test_support::db_dir::DbDir;
use retake_test_support::postgres;
use retake_test_support::process::{ServerCommand, ServerProcess};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A chain of `n` local://sleep steps of `ms` each.
fn sleep_chain(name: &str, n: usize, ms: u64) -> String {
    let mut yaml = format!("name: {name}\nnodes:\n");
    for i in 1..=n {
        yaml.push_str(&format!(
            "  s{i:02}:\n    agent: local://sleep\n    config: {{ms: {ms}}}\n    inputs: {{step: \"{i}\"}}\n    outputs: [result]\n"
        ));
        if i > 1 {
            yaml.push_str(&format!("    depends_on: [s{:02}]\n", i - 1));
        }
    }
    yaml
}

/// `count` servers on database `url`, each with `args`, logs in `dir`.
fn servers(dir: &DbDir, url: &str, count: usize, args: &[&str]) -> Vec<ServerProcess> {
    let mut started: Vec<ServerProcess> = (0..count)
        .map(|i| {
            ServerCommand::new(url)
                .args(args.iter().copied())
                .args(["--server-id", &format!("server-{i}")])
                .log(dir.path().join(format!("server-{i}.log")))
                .start()
        })
        .collect();
    for server in &mut started {
        server.wait_listening();
    }
    started
}

/// The events of a run are 1, 2, … with no gap or repeat, end with
/// RUN_FINISHED, and no node completes twice or starts after completing.
#[track_caller]
fn assert_events_whole(events: &[pb::Event]) {
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(sequences, expected, "events have a gap or a repeat");
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(pb::EventKind::RunFinished as i32)
    );
    let mut completed = BTreeSet::new();
    for e in events {
        if e.kind == pb::EventKind::NodeStarted as i32 {
            assert!(
                !completed.contains(&e.node_id),
                "{} started again after it completed",
                e.node_id
            );
        }
        if e.kind == pb::EventKind::NodeCompleted as i32 {
            assert!(
                completed.insert(e.node_id.clone()),
                "{} completed twice",
                e.node_id
            );
        }
    }
}

/// CancelRun through `client`; the run as it ended.
async fn cancel(client: &mut retake_test_support::Client, id: &str) -> pb::Run {
    client
        .runs
        .cancel_run(pb::CancelRunRequest { run_id: id.into() })
        .await
        .unwrap_or_else(|e| panic!("CancelRun {id}: {e}"))
        .into_inner()
        .run
        .expect("CancelRun answers with the run")
}

/// Polls the run through `client` (every 50 ms, at most 10 s) until it
/// has `status`; fails naming the status it has instead.
async fn until_status(client: &mut retake_test_support::Client, id: &str, status: pb::RunStatus) {
    let mut seen = 0;
    for _ in 0..200 {
        seen = client.get(id).await.0.status;
        if seen == status as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} is {seen}, not {status:?}, after 10 s");
}

/// Starts a server on `url` that must refuse to serve, waits (at most
/// 30 s) for it to exit unsuccessfully, and returns its log.
fn refused_log(url: &str, log: &std::path::Path) -> String {
    let mut server = ServerCommand::new(url).log(log).start();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    std::fs::read_to_string(log).unwrap()
}

async fn database() -> Option<postgres::PgDatabase> {
    postgres::database().await
}

/// How many runs each server executed, from the database itself.
async fn run_owners(url: &str) -> BTreeMap<String, i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_as::<_, (Option<String>, i64)>("SELECT owner, COUNT(*) FROM runs GROUP BY owner")
        .fetch_all(&mut conn)
        .await
        .expect("count runs by owner")
        .into_iter()
        .map(|(owner, n)| (owner.unwrap_or_else(|| "(none)".into()), n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executing_on_one_server_is_watched_live_from_another() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-watch");
    let servers = servers(&dir, &db.url(), 2, &[]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let run = a.start_run(&sleep_chain("watched", 8, 150)).await;
    // From B, while A executes it: every event, live, in order.
    let live = tokio::time::timeout(Duration::from_secs(60), b.events(&run.id, 0))
        .await
        .expect("the watch on the other server ends with the run");
    assert_events_whole(&live);
    assert_eq!(
        live.iter()
            .filter(|e| e.kind == pb::EventKind::NodeCompleted as i32)
            .count(),
        8
    );
    // Resuming from the middle on B gives the rest, with no gap.
    let rest = b.events(&run.id, 5).await;
    assert_eq!(rest.first().map(|e| e.sequence), Some(6));
    assert_eq!(rest.len(), live.len() - 5);
    let (done, _) = b.get(&run.id).await;
    assert_eq!(done.status, pb::RunStatus::Completed as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_runs_finish_on_another_without_running_a_completed_node_again() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-takeover");
    let mut servers = servers(&dir, &db.url(), 2, &["--lease-ms", "1500"]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let runs: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                a.start_run(&sleep_chain(&format!("long{i}"), 12, 150))
                    .await
                    .id,
            );
        }
        ids
    };
    // Let A complete a few nodes of each, then kill it mid-node.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, before) = b.get(&runs[0]).await;
    let completed_before = before
        .iter()
        .filter(|n| n.status == pb::NodeStatus::Completed as i32)
        .count();
    assert!(
        (1..12).contains(&completed_before),
        "{completed_before} of 12 completed when A was killed"
    );
    servers[0].kill9();
    for id in &runs {
        let events = tokio::time::timeout(Duration::from_secs(60), b.events(id, 0))
            .await
            .expect("B finishes A's run");
        assert_events_whole(&events);
        let (run, nodes) = b.get(id).await;
        assert_eq!(run.status, pb::RunStatus::Completed as i32, "{id}");
        assert!(
            nodes
                .iter()
                .all(|n| n.status == pb::NodeStatus::Completed as i32)
        );
    }
    // Every node A completed kept its single attempt.
    let (_, after) = b.get(&runs[0]).await;
    for (old, new) in before.iter().zip(&after) {
        if old.status == pb::NodeStatus::Completed as i32 {
            assert_eq!(old.attempts.len(), new.attempts.len(), "{}", old.node_id);
            assert_eq!(old.output_artifact_ids, new.output_artifact_ids);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_answers_reach_the_server_executing_the_run() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-commands");
    let servers = servers(&dir, &db.url(), 2, &[]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;

    let long = a.start_run(&sleep_chain("to-cancel", 50, 200)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = cancel(&mut b, &long.id).await;
    assert_eq!(cancelled.status, pb::RunStatus::Cancelled as i32);
    assert_events_whole(&a.events(&long.id, 0).await);

    let gated = a
        .start_run(include_str!("../../examples/approval.yaml"))
        .await;
    // Wait until it waits.
    until_status(&mut b, &gated.id, pb::RunStatus::Waiting).await;
    b.runs
        .resolve_wait(pb::ResolveWaitRequest {
            run_id: gated.id.clone(),
            node_id: "review".into(),
            decision: pb::WaitDecision::Approve as i32,
            ..Default::default()
        })
        .await
        .expect("ResolveWait on the other server");
    let (run, nodes) = b.finish(&gated.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    let by_id: BTreeMap<&str, i32> = nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.status))
        .collect();
    assert_eq!(by_id["publish"], pb::NodeStatus::Completed as i32);
    assert_eq!(by_id["revise"], pb::NodeStatus::Skipped as i32);

    // A wrong answer is refused by the server asked, naming the problem.
    let again = b
        .runs
        .resolve_wait(pb::ResolveWaitRequest {
            run_id: gated.id.clone(),
            node_id: "review".into(),
            decision: pb::WaitDecision::Approve as i32,
            ..Default::default()
        })
        .await
        .expect_err("a finished run has no wait");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_over_three_servers_each_complete_once() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-spread");
    // A small cap: most runs are executed by a server other than the one
    // that accepted them.
    let servers = servers(&dir, &db.url(), 3, &["--max-concurrent-runs", "4"]);
    let mut clients = Vec::new();
    for s in &servers {
        clients.push(s.client().await);
    }
    let yaml = sleep_chain("spread", 3, 5);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        // Most calls go to the first server, the rest round the others.
        let mut client = clients[if i % 4 == 0 { 1 + i % 2 } else { 0 }].clone();
        let yaml = yaml.clone();
        calls.spawn(async move { client.start_run(&yaml).await.id });
    }
    let mut ids = BTreeSet::new();
    while let Some(id) = calls.join_next().await {
        assert!(ids.insert(id.unwrap()), "a run id came back twice");
    }
    assert_eq!(ids.len(), 200);
    for (i, id) in ids.iter().enumerate() {
        let events = tokio::time::timeout(
            Duration::from_secs(120),
            clients[i % 3].clone().events(id, 0),
        )
        .await
        .expect("every run finishes");
        assert_events_whole(&events);
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == pb::EventKind::NodeCompleted as i32)
                .count(),
            3,
            "{events:#?}"
        );
    }
    let owners = run_owners(&db.url()).await;
    assert_eq!(owners.values().sum::<i64>(), 200);
    assert!(
        owners.len() >= 2,
        "the runs were executed by one server only: {owners:?}"
    );
}

mod experiments {
    use super::*;
    use retake::v1::experiment_service_client::ExperimentServiceClient;
    use tonic::transport::Channel;

    async fn client(server: &ServerProcess) -> ExperimentServiceClient<Channel> {
        ExperimentServiceClient::connect(server.url())
            .await
            .unwrap()
    }

    /// Records `n` runs of a two-step workflow and starts an experiment on
    /// `on` that replays each with its second step swapped for
    /// local://sleep, one at a time.
    async fn start(on: &ServerProcess, n: usize) -> String {
        let mut runs = on.client().await;
        let yaml = "name: exp\nnodes:\n  a:\n    agent: local://echo\n    inputs: {x: \"1\"}\n    outputs: [x]\n  b:\n    agent: local://echo\n    inputs: {x: \"${a.x}\"}\n    outputs: [x]\n    depends_on: [a]\n";
        for _ in 0..n {
            let id = runs.start_run(yaml).await.id;
            runs.finish(&id).await;
        }
        client(on)
            .await
            .start_experiment(pb::StartExperimentRequest {
                selection: Some(pb::RunSelection {
                    workflow_name: "exp".into(),
                    ..Default::default()
                }),
                change: Some(pb::ExperimentChange {
                    swaps: vec![pb::AgentSwap {
                        node_id: "b".into(),
                        agent: "local://sleep".into(),
                    }],
                    ..Default::default()
                }),
                concurrency: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .experiment
            .unwrap()
            .id
    }

    async fn get(c: &mut ExperimentServiceClient<Channel>, id: &str) -> pb::Experiment {
        c.get_experiment(pb::GetExperimentRequest {
            experiment_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap()
    }

    async fn until_finished(c: &mut ExperimentServiceClient<Channel>, id: &str) -> pb::Experiment {
        for _ in 0..1200 {
            let e = get(c, id).await;
            if e.status != pb::ExperimentStatus::Running as i32 {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("experiment {id} did not finish within a minute");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_experiment_is_cancelled_from_another_server() {
        let Some(db) = database().await else { return };
        let dir = DbDir::kept_on_failure("cluster-experiment-cancel");
        let servers = servers(&dir, &db.url(), 2, &[]);
        let id = start(&servers[0], 20).await;
        let mut b = client(&servers[1]).await;
        let cancelled = b
            .cancel_experiment(pb::CancelExperimentRequest {
                experiment_id: id.clone(),
            })
            .await
            .expect("CancelExperiment on the server not running it")
            .into_inner()
            .experiment
            .unwrap();
        assert_eq!(cancelled.status, pb::ExperimentStatus::Cancelled as i32);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_servers_experiment_is_finished_by_another() {
        let Some(db) = database().await else { return };
        let dir = DbDir::kept_on_failure("cluster-experiment-takeover");
        let mut servers = servers(&dir, &db.url(), 2, &["--lease-ms", "1500"]);
        let id = start(&servers[0], 6).await;
        let mut b = client(&servers[1]).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        servers[0].kill9();
        let done = until_finished(&mut b, &id).await;
        assert_eq!(done.status, pb::ExperimentStatus::Completed as i32);
        assert_eq!(done.items.len(), 6);
        let mut replays = BTreeSet::new();
        for item in &done.items {
            assert_eq!(item.status, pb::ExperimentItemStatus::Completed as i32);
            assert!(
                replays.insert(item.replay_run_id.clone()),
                "one replay per item"
            );
        }
    }
}

/// A worker connected to one server runs the `worker://` steps of runs
/// executing on another; when the worker's server dies mid-task, the task
/// goes to a worker on another server as a new attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_any_server_take_the_tasks_of_runs_executing_elsewhere() {
    use retake_test_support::worker::open;
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-workers");
    let mut servers = servers(&dir, &db.url(), 3, &["--lease-ms", "1500"]);
    let yaml = "name: relayed\nnodes:\n  first: {agent: local://echo, inputs: {text: hello}, outputs: [result]}\n  shout:\n    agent: worker://upper\n    inputs: {text: '${first.result}'}\n    outputs: [result]\n    depends_on: [first]\n";
    let mut a = servers[0].client().await;
    let run = a.start_run(yaml).await;
    // No worker anywhere yet: the node waits, and says so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, nodes) = a.get(&run.id).await;
    assert_eq!(nodes[1].status, pb::NodeStatus::Queued as i32);
    // A worker on B takes the task of A's run.
    let mut on_b = open(&servers[1].url(), "w-b", &["upper"], 1).await.unwrap();
    let task = on_b.task().await;
    assert_eq!(task.run_id, run.id);
    assert_eq!(task.node_id, "shout");
    assert!(task.inputs_json.contains("hello"), "{}", task.inputs_json);
    on_b.complete(&task, &[("result", "HELLO")], "text/plain");
    let (done, nodes) = a.finish(&run.id).await;
    assert_eq!(done.status, pb::RunStatus::Completed as i32);
    let shout = &nodes[1];
    assert_eq!(shout.attempts.len(), 1);
    assert_eq!(shout.attempts[0].worker, "w-b");
    assert_eq!(a.content(&shout.output_artifact_ids[0]).await, "HELLO");

    // B dies holding a task: a worker on C gets it as a new attempt.
    let second = a.start_run(yaml).await;
    let held = on_b.task().await;
    assert_eq!(held.run_id, second.id);
    servers[1].kill9();
    let mut on_c = open(&servers[2].url(), "w-c", &["upper"], 1).await.unwrap();
    let again = on_c.task().await;
    assert_eq!(
        (again.run_id.as_str(), again.attempt),
        (second.id.as_str(), held.attempt + 1)
    );
    on_c.complete(&again, &[("result", "AGAIN")], "text/plain");
    let (done, nodes) = a.finish(&second.id).await;
    assert_eq!(done.status, pb::RunStatus::Completed as i32);
    assert_eq!(nodes[1].attempts.len(), 2);
    assert_eq!(nodes[1].attempts[1].worker, "w-c");
}

/// A database that cannot be reached stops the server at start-up with a
/// message naming it, its password hidden; a URL that is not one is
/// refused likewise.
#[test]
fn an_unusable_database_url_is_refused_without_its_password() {
    let dir = DbDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (i, (url, expected)) in [
        (
            format!("postgres://retake:hunter2@127.0.0.1:{port}/retake"),
            format!("cannot use the PostgreSQL database at postgres://retake:****@127.0.0.1:{port}/retake"),
        ),
        (
            "postgres://retake:hunter2@127.0.0.1:notaport/retake".to_string(),
            "is not a PostgreSQL URL".to_string(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let text = refused_log(&url, &dir.path().join(format!("server-{i}.log")));
        assert!(text.contains(&expected), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// A server at its cap claims no new runs: a run started while every
/// server is busy waits PENDING for a slot, and can still be cancelled
/// from any server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_no_server_has_room_for_waits_and_can_be_cancelled() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-cap");
    let servers = servers(&dir, &db.url(), 2, &["--max-concurrent-runs", "1"]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let long = sleep_chain("busy", 300, 100);
    let first = a.start_run(&long).await;
    let second = a.start_run(&long).await;
    let third = a.start_run(&sleep_chain("waiting", 2, 10)).await;
    // A executes the first; B claims the second.
    for id in [&first.id, &second.id] {
        until_status(&mut b, id, pb::RunStatus::Running).await;
    }
    // Several claim rounds later, the third still waits.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (waiting, _) = b.get(&third.id).await;
    assert_eq!(waiting.status, pb::RunStatus::Pending as i32);
    let owners = run_owners(&db.url()).await;
    assert_eq!(owners.get("(none)"), Some(&1), "{owners:?}");
    assert_eq!(owners.len(), 3, "one run each, one waiting: {owners:?}");

    let cancelled = cancel(&mut b, &third.id).await;
    assert_eq!(cancelled.status, pb::RunStatus::Cancelled as i32);
    for id in [first.id, second.id] {
        cancel(&mut b, &id).await;
    }
}

/// TLS to PostgreSQL as the URL's `sslmode` asks: verified against the
/// root given, every connection of the server is encrypted; verified
/// against roots that do not hold the server's certificate, the server
/// refuses to start, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgres_follows_the_urls_sslmode() {
    use sqlx::Connection;
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-tls");
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url(),
        db.ca_cert().display()
    );
    let servers = servers(&dir, &verified, 1, &[]);
    let mut client = servers[0].client().await;
    let (_, run, _) = client.run(&sleep_chain("tls", 2, 1)).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    let name = db.url().rsplit('/').next().unwrap().to_string();
    let mut conn = sqlx::PgConnection::connect(&format!("{}?sslmode=disable", db.url()))
        .await
        .unwrap();
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(all >= 2, "the server's connections: {all}");
    assert_eq!(encrypted, all, "every connection of the server uses TLS");

    let unverifiable = format!("{}?sslmode=verify-full", db.url());
    let text = refused_log(&unverifiable, &dir.path().join("refused.log"));
    assert!(
        text.contains("cannot use the PostgreSQL database")
            && text.to_lowercase().contains("certificate"),
        "{text}"
    );
}

/// A server restarted with the same `--server-id` resumes its runs at
/// once, not when their (here minute-long) leases run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_with_its_id_resumes_its_runs_at_once() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-restart");
    let start = || {
        let mut server = ServerCommand::new(db.url())
            .args(["--server-id", "steady", "--lease-ms", "60000"])
            .log(dir.path().join("server.log"))
            .start();
        server.wait_listening();
        server
    };
    let mut first = start();
    let run = first
        .client()
        .await
        .start_run(&sleep_chain("restarted", 20, 100))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill9();
    let second = start();
    let events = tokio::time::timeout(
        Duration::from_secs(20),
        second.client().await.events(&run.id, 0),
    )
    .await
    .expect("the run resumes well before its lease runs out");
    assert_events_whole(&events);
}

/// A StartRun retried on another server, even at the same moment, returns
/// the first call's run: the request_id is in the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_holds_across_servers() {
    let Some(db) = database().await else { return };
    let dir = DbDir::kept_on_failure("cluster-request-ids");
    let servers = servers(&dir, &db.url(), 2, &[]);
    let mut clients = Vec::new();
    for s in &servers {
        clients.push(s.client().await);
    }
    let request = pb::StartRunRequest {
        workflow: sleep_chain("once", 2, 10),
        request_id: "one-run-please".into(),
        ..Default::default()
    };
    let calls = (0..8).map(|i| {
        let mut client = clients[i % 2].clone();
        let request = request.clone();
        async move {
            client
                .runs
                .start_run(request)
                .await
                .expect("StartRun")
                .into_inner()
                .run
                .expect("a run")
                .id
        }
    });
    let ids: BTreeSet<String> = futures::future::join_all(calls).await.into_iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(run_owners(&db.url()).await.values().sum::<i64>(), 1);
}
