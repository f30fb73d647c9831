//! StartRun and ReplayRun with a request_id (AIP-155): a retry returns the
//! first call's run, never a second one, at once, concurrently and after
//! a restart; the id reused for another request is refused.

use retake::v1 as pb;
use retake_test_support::db_dir::DbDir;
use retake_test_support::in_process;
use retake_test_support::process::ServerCommand;
use tonic::Code;

const HELLO: &str =
    "name: hello\nnodes:\n  a: {agent: local://echo, inputs: {text: hi}, outputs: [result]}\n";

fn start(workflow: &str, request_id: &str) -> pb::StartRunRequest {
    pb::StartRunRequest {
        workflow: workflow.into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

async fn start_run(
    client: &mut retake_test_support::Client,
    req: pb::StartRunRequest,
) -> Result<pb::Run, tonic::Status> {
    Ok(client
        .runs
        .start_run(req)
        .await?
        .into_inner()
        .run
        .expect("a run"))
}

async fn count_runs(client: &mut retake_test_support::Client) -> usize {
    client
        .runs
        .list_runs(pb::ListRunsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs
        .len()
}

#[tokio::test]
async fn a_retried_start_returns_the_first_run() {
    let s = in_process::start().await;
    let mut c = (*s).clone();
    let first = start_run(&mut c, start(HELLO, "req-1")).await.unwrap();
    let again = start_run(&mut c, start(HELLO, "req-1")).await.unwrap();
    assert_eq!(again.id, first.id);
    // Ten at once: one run.
    let calls = (0..10).map(|_| {
        let mut c = c.clone();
        async move { start_run(&mut c, start(HELLO, "req-2")).await.unwrap().id }
    });
    let ids: std::collections::BTreeSet<String> =
        futures::future::join_all(calls).await.into_iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    // Without an id, every call starts a run.
    start_run(&mut c, start(HELLO, "")).await.unwrap();
    start_run(&mut c, start(HELLO, "")).await.unwrap();
    assert_eq!(count_runs(&mut c).await, 4);

    // The id of another request: refused, naming it.
    let other = HELLO.replace("hi", "ho");
    let err = start_run(&mut c, start(&other, "req-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("req-1") && err.message().contains(&first.id),
        "{}",
        err.message()
    );
    for bad in ["has space", &"x".repeat(129)] {
        let err = start_run(&mut c, start(HELLO, bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(err.message().contains("request_id"), "{}", err.message());
    }
    assert_eq!(count_runs(&mut c).await, 4);
}

#[tokio::test]
async fn a_retried_replay_returns_the_first_replay() {
    let s = in_process::start().await;
    let mut c = (*s).clone();
    let source = start_run(&mut c, start(HELLO, "")).await.unwrap();
    c.finish(&source.id).await;
    let replay = |id: &str| pb::ReplayRunRequest {
        run_id: source.id.clone(),
        from_node: "a".into(),
        request_id: id.into(),
        ..Default::default()
    };
    let first = c
        .runs
        .replay_run(replay("r-1"))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let again = c
        .runs
        .replay_run(replay("r-1"))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(again.id, first.id);
    let mut other = replay("r-1");
    other.from_node = String::new();
    other.allow_drift = true;
    let err = c.runs.replay_run(other).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(count_runs(&mut c).await, 2);
}

#[tokio::test]
async fn a_request_id_outlives_a_restart() {
    let dir = DbDir::kept_on_failure("request-ids-restart");
    let first = {
        let server = ServerCommand::new(dir.db()).log(dir.log()).spawn();
        let mut c = server.client().await;
        start_run(&mut c, start(HELLO, "across-restarts"))
            .await
            .unwrap()
    };
    let server = ServerCommand::new(dir.db()).log(dir.log()).spawn();
    let mut c = server.client().await;
    let again = start_run(&mut c, start(HELLO, "across-restarts"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(count_runs(&mut c).await, 1);
}
