//! `retake workers` and the worker in `retake debug`, against a server
//! with a worker connected (written against the generated client).

mod common;

use common::*;
use retake::v1 as pb;
use retake::v1::worker_service_client::WorkerServiceClient;
use retake_cli::cli::DebugArgs;
use retake_cli::commands;
use retake_cli::render::{Output, Style};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

fn req(kind: pb::work_request::Kind) -> pb::WorkRequest {
    pb::WorkRequest { kind: Some(kind) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_lists_connected_workers_and_debug_names_the_one_that_ran() {
    let server = served(None).await;
    let clients = server.clients(None).await;
    let none = commands::workers::list(&clients).await.unwrap();
    assert_eq!(none.text(Style::PLAIN), "No workers connected.\n");

    let (tx, out) = mpsc::unbounded_channel();
    tx.send(req(pb::work_request::Kind::Hello(pb::WorkerHello {
        name: "cli-worker".into(),
        agents: vec!["summarize".into()],
        concurrency: 2,
    })))
    .unwrap();
    let mut stream = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap()
        .work(UnboundedReceiverStream::new(out))
        .await
        .unwrap()
        .into_inner();
    let _welcome = stream.message().await.unwrap().unwrap();
    let mut runs = clients.runs.clone();
    let run = runs
        .start_run(pb::StartRunRequest {
            workflow: "name: w\nnodes:\n  sum: {agent: worker://summarize, outputs: [result]}\n"
                .into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let Some(pb::work_response::Kind::Task(task)) = stream.message().await.unwrap().unwrap().kind
    else {
        panic!("expected a task");
    };

    let listed = commands::workers::list(&clients).await.unwrap();
    let text = listed.text(Style::PLAIN);
    assert!(text.contains("cli-worker"), "{text}");
    assert!(text.contains("agents: summarize"), "{text}");
    assert!(text.contains("tasks: 1/2"), "{text}");
    assert!(
        text.contains(&format!("{} node sum (attempt 1)", run.id)),
        "{text}"
    );
    let json = listed.json();
    assert_eq!(json[0]["tasks"][0]["node_id"], "sum");

    tx.send(req(pb::work_request::Kind::Result(pb::TaskResult {
        task_id: task.task_id,
        outcome: Some(pb::task_result::Outcome::Outputs(pb::TaskOutputs {
            outputs: [("result".to_string(), "short".to_string())].into(),
            ..Default::default()
        })),
    })))
    .unwrap();
    let mut watch = runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while watch.message().await.unwrap().is_some() {}
    let report = commands::debug::debug(
        &clients,
        &DebugArgs {
            run_id: run.id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = report.text(Style::PLAIN);
    assert!(text.contains("Worker: cli-worker"), "{text}");
    assert_eq!(
        report.json()["nodes"][0]["attempts"][0]["worker"],
        "cli-worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_without_a_server_says_to_give_one() {
    let env = embedded().await;
    let err = commands::workers::list(&env.clients).await.unwrap_err();
    assert!(err.message.contains("--server"), "{}", err.message);
}
