//! Durability: kill -9 the real server binary mid-run, start it again on
//! the same database, and the run finishes without re-running any node
//! whose completion was recorded.

use retake::v1 as pb;
use retake_test_support::process::{ServerCommand, ServerProcess};
use retake_test_support::workflows::sleep_chain as chain;
use retake_test_support::{Client, DbDir};
use std::path::Path;
use std::process::Command;
use tokio_stream::StreamExt;

fn spawn_server(db: &Path) -> ServerProcess {
    ServerCommand::new(db).spawn()
}

fn spawn_server_with(db: &Path, args: &[&str]) -> ServerProcess {
    ServerCommand::new(db).args(args).spawn()
}

#[tokio::test]
async fn a_killed_server_resumes_its_runs_without_rerunning_completed_nodes() {
    let dir = DbDir::new();
    let db = dir.db();
    let mut server = spawn_server(&db);
    let mut client = server.client().await;
    let run = client.start_run(&chain(20, 150)).await;

    // Let a few nodes complete, then kill the server without warning.
    let mut events = client
        .runs
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
    server.kill9();

    let mut server = spawn_server(&db);
    let mut client = server.client().await;
    let mut events = client
        .runs
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

    let (got, nodes) = client.get(&run.id).await;
    assert_eq!(got.status, pb::RunStatus::Completed as i32);
    assert_eq!(nodes.len(), 20);
    for n in &nodes {
        assert_eq!(n.status, pb::NodeStatus::Completed as i32, "{}", n.node_id);
        if completed_before.contains(&n.node_id) {
            assert_eq!(
                n.attempt_count, 1,
                "{} completed before the kill and must not run again",
                n.node_id
            );
        }
    }
    server.kill9();
}

/// Polls the run until it has ended: the server may restart meanwhile.
async fn wait_finished(client: &mut Client, id: &str) -> (pb::Run, Vec<pb::NodeExecution>) {
    for _ in 0..600 {
        let (run, nodes) = client.get(id).await;
        if [
            pb::RunStatus::Completed,
            pb::RunStatus::Failed,
            pb::RunStatus::Cancelled,
        ]
        .iter()
        .any(|s| *s as i32 == run.status)
        {
            return (run, nodes);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test]
async fn restarts_record_only_attempts_that_really_ran() {
    let dir = DbDir::new();
    let db = dir.db();
    // Sixteen independent nodes, two executing at a time.
    let mut yaml = String::from("name: wide\nnodes:\n");
    for i in 0..16 {
        yaml.push_str(&format!(
            "  n{i}:\n    agent: local://sleep\n    config: {{ms: 400}}\n    outputs: [result]\n"
        ));
    }
    let slots = ["--max-parallel-nodes", "2"];
    let mut server = spawn_server_with(&db, &slots);
    let mut client = server.client().await;
    let run = client.start_run(&yaml).await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        server.kill9();
        server = spawn_server_with(&db, &slots);
        client = server.client().await;
    }
    let (got, nodes) = wait_finished(&mut client, &run.id).await;
    assert_eq!(got.status, pb::RunStatus::Completed as i32);
    let attempts: usize = nodes.iter().map(|n| n.attempts.len()).sum();
    // One per node, plus at most the two executing at each of four kills.
    assert!(attempts <= 16 + 4 * 2, "{attempts} attempts recorded");
    for n in &nodes {
        for a in &n.attempts[..n.attempts.len() - 1] {
            assert_eq!(
                a.error_origin,
                pb::FailureOrigin::Interrupted as i32,
                "{}: only interrupted attempts precede the last",
                n.node_id
            );
        }
    }
    server.kill9();
}

#[tokio::test]
async fn sigterm_with_a_watcher_on_a_waiting_run_exits_promptly() {
    let dir = DbDir::new();
    let db = dir.db();
    let mut server = spawn_server(&db);
    let mut client = server.client().await;
    let run = client
        .start_run("name: gate\nnodes:\n  ok: {agent: \"human://approve\", outputs: [decision]}\n")
        .await;
    let mut events = client
        .runs
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
    let pid = server.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.try_wait() {
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
    let dir = DbDir::new();
    let db = dir.db();
    let mut server = spawn_server(&db);
    let mut client = server.client().await;
    let run = client
        .start_run(
        "name: literal\nnodes:\n  a: {agent: local://sleep, config: {ms: 1500}, outputs: [result]}\n  b:\n    agent: local://echo\n    depends_on: [a]\n    config: {api_key: literal-key-123456}\n    outputs: [result]\n",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill9();

    let mut server = spawn_server(&db);
    let mut client = server.client().await;
    let (got, nodes) = wait_finished(&mut client, &run.id).await;
    assert_eq!(got.status, pb::RunStatus::Failed as i32);
    let b = nodes.iter().find(|n| n.node_id == "b").unwrap();
    assert!(b.error.contains("${env.NAME}"), "{}", b.error);
    assert!(b.error.contains("config.api_key"), "{}", b.error);
    server.kill9();
}
