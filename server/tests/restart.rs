//! Durability: kill -9 the real server binary mid-run, start it again on
//! the same database, and the run finishes without re-running any node
//! whose completion was recorded.

use retake::v1 as pb;
use retake::v1::run_service_client::RunServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

struct Server {
    child: Child,
    addr: String,
}

fn spawn_server(db: &std::path::Path) -> Server {
    spawn_server_with(db, &[])
}

fn spawn_server_with(db: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retake-server"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start retake-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(addr.contains(':'), "unexpected first line: {line}");
    Server { child, addr }
}

async fn client(addr: &str) -> RunServiceClient<Channel> {
    RunServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn chain(n: usize, ms: u64) -> String {
    let mut yaml = String::from("name: sleep-chain\nnodes:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  n{i}:\n    agent: local://sleep\n    config: {{ms: {ms}}}\n    outputs: [result]\n"
        ));
        if i > 0 {
            yaml.push_str(&format!("    depends_on: [n{}]\n", i - 1));
        }
    }
    yaml
}

#[tokio::test]
async fn a_killed_server_resumes_its_runs_without_rerunning_completed_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retake.db");
    let mut server = spawn_server(&db);
    let mut runs = client(&server.addr).await;
    let run = runs
        .start_run(pb::StartRunRequest {
            workflow: chain(20, 150),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();

    // Let a few nodes complete, then kill the server without warning.
    let mut events = runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut completed_before = Vec::new();
    while let Some(e) = events.next().await {
        let e = e.unwrap().event.unwrap();
        if e.kind == pb::EventKind::NodeCompleted as i32 {
            completed_before.push(e.node_id.clone());
            if completed_before.len() == 5 {
                break;
            }
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut server = spawn_server(&db);
    let mut runs = client(&server.addr).await;
    let mut events = runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(e) = events.next().await {
        seqs.push(e.unwrap().event.unwrap().sequence);
    }
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "events stay gap-free across the restart"
    );

    let got = runs
        .get_run(pb::GetRunRequest {
            run_id: run.id.clone(),
            include_nodes: true,
            include_workflow: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.run.unwrap().status, pb::RunStatus::Completed as i32);
    assert_eq!(got.nodes.len(), 20);
    for n in &got.nodes {
        assert_eq!(n.status, pb::NodeStatus::Completed as i32, "{}", n.node_id);
        if completed_before.contains(&n.node_id) {
            assert_eq!(
                n.attempt_count, 1,
                "{} completed before the kill and must not run again",
                n.node_id
            );
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

async fn get(runs: &mut RunServiceClient<Channel>, id: &str) -> pb::GetRunResponse {
    runs.get_run(pb::GetRunRequest {
        run_id: id.into(),
        include_nodes: true,
        include_workflow: false,
    })
    .await
    .unwrap()
    .into_inner()
}

async fn start(runs: &mut RunServiceClient<Channel>, yaml: &str) -> pb::Run {
    runs.start_run(pb::StartRunRequest {
        workflow: yaml.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .run
    .unwrap()
}

async fn wait_finished(runs: &mut RunServiceClient<Channel>, id: &str) -> pb::GetRunResponse {
    for _ in 0..600 {
        let got = get(runs, id).await;
        let status = got.run.as_ref().unwrap().status;
        if [
            pb::RunStatus::Completed,
            pb::RunStatus::Failed,
            pb::RunStatus::Cancelled,
        ]
        .iter()
        .any(|s| *s as i32 == status)
        {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test]
async fn restarts_record_only_attempts_that_really_ran() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retake.db");
    // Sixteen independent nodes, two executing at a time.
    let mut yaml = String::from("name: wide\nnodes:\n");
    for i in 0..16 {
        yaml.push_str(&format!(
            "  n{i}:\n    agent: local://sleep\n    config: {{ms: 400}}\n    outputs: [result]\n"
        ));
    }
    let slots = ["--max-parallel-nodes", "2"];
    let mut server = spawn_server_with(&db, &slots);
    let mut runs = client(&server.addr).await;
    let run = start(&mut runs, &yaml).await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        server = spawn_server_with(&db, &slots);
        runs = client(&server.addr).await;
    }
    let got = wait_finished(&mut runs, &run.id).await;
    assert_eq!(got.run.unwrap().status, pb::RunStatus::Completed as i32);
    let attempts: usize = got.nodes.iter().map(|n| n.attempts.len()).sum();
    // One per node, plus at most the two executing at each of four kills.
    assert!(attempts <= 16 + 4 * 2, "{attempts} attempts recorded");
    for n in &got.nodes {
        for a in &n.attempts[..n.attempts.len() - 1] {
            assert_eq!(
                a.error_origin,
                pb::FailureOrigin::Interrupted as i32,
                "{}: only interrupted attempts precede the last",
                n.node_id
            );
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_with_a_watcher_on_a_waiting_run_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retake.db");
    let mut server = spawn_server(&db);
    let mut runs = client(&server.addr).await;
    let run = start(
        &mut runs,
        "name: gate\nnodes:\n  ok: {agent: \"human://approve\", outputs: [decision]}\n",
    )
    .await;
    let mut events = runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // Wait until the run waits, with the stream still open.
    while let Some(e) = events.next().await {
        if e.unwrap().event.unwrap().kind == pb::EventKind::WaitStarted as i32 {
            break;
        }
    }
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // After the events already sent, the stream ends with a status saying
    // why (or with the connection).
    let mut end = events.next().await;
    while let Some(Ok(_)) = end {
        end = events.next().await;
    }
    if let Some(Err(s)) = &end {
        assert!(
            [tonic::Code::Unavailable, tonic::Code::Unknown].contains(&s.code()),
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn a_literal_key_lost_in_a_restart_fails_the_node_saying_how_to_pass_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retake.db");
    let mut server = spawn_server(&db);
    let mut runs = client(&server.addr).await;
    let run = start(
        &mut runs,
        "name: literal\nnodes:\n  a: {agent: local://sleep, config: {ms: 1500}, outputs: [result]}\n  b:\n    agent: local://echo\n    depends_on: [a]\n    config: {api_key: literal-key-123456}\n    outputs: [result]\n",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut server = spawn_server(&db);
    let mut runs = client(&server.addr).await;
    let got = wait_finished(&mut runs, &run.id).await;
    assert_eq!(got.run.unwrap().status, pb::RunStatus::Failed as i32);
    let b = got.nodes.iter().find(|n| n.node_id == "b").unwrap();
    assert!(b.error.contains("${env.NAME}"), "{}", b.error);
    assert!(b.error.contains("config.api_key"), "{}", b.error);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
