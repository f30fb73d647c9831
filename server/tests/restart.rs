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
    let mut child = Command::new(env!("CARGO_BIN_EXE_retake-server"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
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
