//! `worker://` nodes against a real server, with workers written straight
//! from the `.proto` (the generated tonic client): tasks delivered and
//! completed, queued until a worker connects, failures, workers lost
//! mid-task, late results refused, credentials kept from workers.

use retake::v1 as pb;
use retake::v1::worker_service_client::WorkerServiceClient;
use retake_test_support::in_process::{self, TestServer};
use retake_test_support::worker::{open, req};
use std::time::Duration;
use tokio_stream::StreamExt;

async fn server(lease_ms: u64) -> TestServer {
    in_process::start_with(|s| s.worker_lease = Duration::from_millis(lease_ms)).await
}

fn url(s: &TestServer) -> String {
    format!("http://{}", s.addr)
}

const UPPER: &str = "name: upper
nodes:
  first: {agent: local://echo, inputs: {text: hello}, outputs: [result]}
  shout:
    agent: worker://upper
    inputs: {text: '${first.result}'}
    config: {mode: loud, api_key: sk-should-never-leave}
    outputs: [result]
    depends_on: [first]
";

/// The worker gets the node's task (ids, attempt, rendered inputs, config
/// without credentials, output names, upstream outputs, a deadline), and
/// its result is the node's output; the attempt names the worker.
#[tokio::test]
async fn a_worker_runs_a_step_and_its_result_is_the_nodes_output() {
    let mut s = server(10_000).await;
    let mut w = open(&url(&s), "tester", &["upper"], 1).await.unwrap();
    assert_eq!(w.welcome.name, "tester");
    assert_eq!(w.welcome.lease_ms, 10_000);
    let run = s.start_run(UPPER).await;
    let task = w.task().await;
    assert_eq!(
        (task.run_id.as_str(), task.node_id.as_str(), task.attempt),
        (run.id.as_str(), "shout", 1)
    );
    assert_eq!(task.agent, "upper");
    assert!(task.node_execution_id.starts_with("nex_"));
    let inputs: serde_json::Value = serde_json::from_str(&task.inputs_json).unwrap();
    assert_eq!(inputs["text"], serde_json::json!({"text": "hello"}));
    let config: serde_json::Value = serde_json::from_str(&task.config_json).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"mode": "loud"}),
        "no credentials"
    );
    // The same as Structs: the config's one key, the inputs' one key.
    let config = task.config.as_ref().expect("config as a Struct");
    assert_eq!(config.fields.keys().collect::<Vec<_>>(), ["mode"]);
    let inputs = task.inputs.as_ref().expect("inputs as a Struct");
    assert_eq!(inputs.fields.keys().collect::<Vec<_>>(), ["text"]);
    assert_eq!(task.output_names, ["result"]);
    assert_eq!(task.upstream.len(), 1);
    assert_eq!(task.upstream[0].node_id, "first");
    assert!(task.deadline.is_some());
    w.complete(&task, &[("result", "HELLO")], "");

    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    let shout = nodes.iter().find(|n| n.node_id == "shout").unwrap();
    assert_eq!(s.content(&shout.output_artifact_ids[0]).await, "HELLO");
    assert_eq!(shout.attempts.len(), 1);
    assert_eq!(shout.attempts[0].worker, "tester");
    let events = s.events(&run.id, 0).await;
    let started = events
        .iter()
        .find(|e| e.kind == pb::EventKind::NodeStarted as i32 && e.node_id == "shout")
        .unwrap();
    assert_eq!(started.worker, "tester");
}

/// With no worker connected the node is QUEUED, saying for what; the
/// task goes to the first worker that connects.
#[tokio::test]
async fn a_task_waits_queued_until_a_worker_connects() {
    let mut s = server(10_000).await;
    let run = s
        .start_run(
            "name: q\nnodes:\n  job: {agent: worker://slowpoke, inputs: {n: 1}, outputs: [result]}\n",
        )
        .await;
    let mut watch = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let queued = loop {
        let e = watch.next().await.unwrap().unwrap().event.unwrap();
        if e.kind == pb::EventKind::NodeQueued as i32 {
            break e;
        }
    };
    assert_eq!(queued.node_status, pb::NodeStatus::Queued as i32);
    assert!(
        queued
            .message
            .contains("waiting for a worker for 'slowpoke'"),
        "{}",
        queued.message
    );
    let (queued_run, nodes) = s.get(&run.id).await;
    assert_eq!(nodes[0].status, pb::NodeStatus::Queued as i32);
    let counts = queued_run.counts.unwrap();
    assert_eq!((counts.queued, counts.pending), (1, 0));

    let mut w = open(&url(&s), "late", &["slowpoke"], 1).await.unwrap();
    let task = w.task().await;
    w.complete(&task, &[("anything", "done")], "text/plain");
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    assert_eq!(s.content(&nodes[0].output_artifact_ids[0]).await, "done");
}

/// A failure the worker calls permanent fails the node at once, with its
/// message and details; a transient one is retried by the policy.
#[tokio::test]
async fn a_failed_task_fails_the_node_with_the_workers_message() {
    let mut s = server(10_000).await;
    let mut w = open(&url(&s), "w", &["flaky", "broken"], 1).await.unwrap();
    let run = s
        .start_run(
            "name: f\nnodes:\n  a:\n    agent: worker://flaky\n    outputs: [result]\n    retry_policy: {max_retries: 2, backoff: fixed, initial_delay_ms: 1}\n  b:\n    agent: worker://broken\n    outputs: [result]\n    depends_on: [a]\n    retry_policy: {max_retries: 3, backoff: fixed, initial_delay_ms: 1}\n",
        )
        .await;
    let first = w.task().await;
    w.fail(&first, "rate limited", "", false);
    let second = w.task().await;
    assert_eq!((second.node_id.as_str(), second.attempt), ("a", 2));
    w.complete(&second, &[("result", "ok")], "");
    let broken = w.task().await;
    w.fail(
        &broken,
        "ValueError: no such document",
        "Traceback (most recent call last):\n  File \"w.py\", line 3",
        true,
    );
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32);
    let b = nodes.iter().find(|n| n.node_id == "b").unwrap();
    assert_eq!(b.attempts.len(), 1, "a permanent failure is not retried");
    assert!(
        b.error.contains("ValueError: no such document"),
        "{}",
        b.error
    );
    assert!(b.error.contains("Traceback"), "{}", b.error);
    let a = nodes.iter().find(|n| n.node_id == "a").unwrap();
    assert_eq!(a.attempts.len(), 2);
}

/// A worker lost mid-task (its connection gone, no heartbeat) loses the
/// task when its lease runs out: the task goes to another worker as a new
/// attempt that costs no retry budget, and the lost worker's late result
/// (sent after it reconnects) is refused, so the step completes once.
#[tokio::test]
async fn a_lost_workers_task_goes_to_another_and_its_late_result_is_refused() {
    let mut s = server(300).await;
    let mut lost = open(&url(&s), "lost", &["job"], 1).await.unwrap();
    // No retry policy: a counted failure of this kind would end the node.
    let run = s
        .start_run("name: l\nnodes:\n  job: {agent: worker://job, outputs: [result]}\n")
        .await;
    let first = lost.task().await;
    drop(lost);
    let mut other = open(&url(&s), "other", &["job"], 1).await.unwrap();
    let second = other.task().await;
    assert_eq!(second.attempt, 2);
    assert_ne!(second.task_id, first.task_id);
    // The lost worker comes back and delivers what it had: too late.
    let mut back = open(&url(&s), "lost", &["unrelated"], 1).await.unwrap();
    back.complete(&first, &[("result", "late")], "");
    match back.next().await {
        pb::work_response::Kind::Refused(r) => {
            assert_eq!(r.task_id, first.task_id);
            assert!(r.reason.contains("lease ran out"), "{}", r.reason);
        }
        other => panic!("expected the late result refused, got {other:?}"),
    }
    other.complete(&second, &[("result", "on time")], "");
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    assert_eq!(s.content(&nodes[0].output_artifact_ids[0]).await, "on time");
    let attempts = &nodes[0].attempts;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].worker, "lost");
    assert_eq!(
        attempts[0].error_origin,
        pb::FailureOrigin::Interrupted as i32
    );
    assert_eq!(attempts[1].worker, "other");
}

/// A worker that stays connected but stops sending (a stuck process) is
/// told its task was taken back when the lease runs out.
#[tokio::test]
async fn a_silent_worker_is_told_its_task_was_taken_back() {
    let mut s = server(300).await;
    let mut silent = open(&url(&s), "silent", &["job"], 1).await.unwrap();
    let run = s
        .start_run("name: l\nnodes:\n  job: {agent: worker://job, outputs: [result]}\n")
        .await;
    let first = silent.task().await;
    match silent.next().await {
        pb::work_response::Kind::Cancelled(c) => {
            assert_eq!(c.task_id, first.task_id);
            assert!(c.reason.contains("lease ran out"), "{}", c.reason);
        }
        other => panic!("expected the task taken back, got {other:?}"),
    }
    // The new attempt comes back to it (it is still connected, and free).
    let second = silent.task().await;
    assert_eq!(second.attempt, 2);
    silent.complete(&second, &[("result", "done")], "");
    let (run, _) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
}

/// Two workers of one agent share its tasks.
#[tokio::test]
async fn two_workers_share_the_tasks_of_one_agent() {
    let mut s = server(10_000).await;
    let mut a = open(&url(&s), "a", &["share"], 1).await.unwrap();
    let mut b = open(&url(&s), "b", &["share"], 1).await.unwrap();
    let run = s
        .start_run("name: s\nnodes:\n  x: {agent: worker://share, outputs: [r]}\n  y: {agent: worker://share, outputs: [r]}\n")
        .await;
    let (ta, tb) = tokio::join!(a.task(), b.task());
    assert_ne!(ta.node_id, tb.node_id);
    let listed = s_workers(&url(&s)).await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|w| w.tasks.len() == 1));
    a.complete(&ta, &[("r", "a")], "");
    b.complete(&tb, &[("r", "b")], "");
    let (run, _) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
}

async fn s_workers(url: &str) -> Vec<pb::Worker> {
    WorkerServiceClient::connect(url.to_string())
        .await
        .unwrap()
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
}

/// A worker must say what it serves, in names a workflow can write.
#[tokio::test]
async fn a_worker_that_serves_nothing_valid_is_refused() {
    let s = server(10_000).await;
    let none = open(&url(&s), "n", &[], 1).await.err().unwrap();
    assert_eq!(none.code(), tonic::Code::InvalidArgument);
    assert!(none.message().contains("at least one agent"), "{none:?}");
    let bad = open(&url(&s), "n", &["no spaces"], 1).await.err().unwrap();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("'no spaces'"), "{bad:?}");
}

/// A server with a token refuses a worker without it.
#[tokio::test]
async fn a_worker_without_the_token_is_refused() {
    let s = in_process::start_with(|s| s.auth_token = Some("s3cret".into())).await;
    let refused = open(&url(&s), "w", &["x"], 1).await.err().unwrap();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

/// A task queued when the server stops is queued again when it starts,
/// and reaches the worker that connects then.
#[tokio::test]
async fn a_queued_task_survives_a_server_restart() {
    let mut s = server(10_000).await;
    let run = s
        .start_run("name: r\nnodes:\n  job: {agent: worker://later, outputs: [result]}\n")
        .await;
    loop {
        let (_, nodes) = s.get(&run.id).await;
        if nodes[0].status == pb::NodeStatus::Queued as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = s.stop().await;
    let mut s = in_process::start_in(dir, |_| {}).await;
    let mut w = open(&url(&s), "after", &["later"], 1).await.unwrap();
    let task = w.task().await;
    assert_eq!(task.run_id, run.id);
    w.complete(&task, &[("result", "delivered")], "");
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    assert_eq!(
        s.content(&nodes[0].output_artifact_ids[0]).await,
        "delivered"
    );
    assert_eq!(
        nodes[0].attempts.len(),
        1,
        "waiting in the queue is no attempt"
    );
}

/// A replay can swap a built-in step for a worker; the reused steps never
/// reach it.
#[tokio::test]
async fn a_replay_swaps_a_step_to_a_worker() {
    let mut s = server(10_000).await;
    let (_, source, _) = s
        .run("name: swap\nnodes:\n  a: {agent: local://echo, inputs: {v: 1}, outputs: [result]}\n  b: {agent: local://echo, inputs: {v: '${a.result}'}, outputs: [result], depends_on: [a]}\n")
        .await;
    let mut w = open(&url(&s), "swapper", &["mine"], 1).await.unwrap();
    let replay = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: source.id.clone(),
            from_node: "b".into(),
            swaps: vec![pb::AgentSwap {
                node_id: "b".into(),
                agent: "worker://mine".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let task = w.task().await;
    assert_eq!(task.node_id, "b");
    w.complete(&task, &[("result", "from the worker")], "");
    let (replay, nodes) = s.finish(&replay.id).await;
    assert_eq!(replay.status, pb::RunStatus::Completed as i32);
    let b = nodes.iter().find(|n| n.node_id == "b").unwrap();
    assert_eq!(
        s.content(&b.output_artifact_ids[0]).await,
        "from the worker"
    );
    let a = nodes.iter().find(|n| n.node_id == "a").unwrap();
    assert_eq!(a.status, pb::NodeStatus::Reused as i32);
}

/// A server that stops ends its workers' streams (they reconnect), so a
/// connected worker does not hold the shutdown up.
#[tokio::test]
async fn stopping_the_server_ends_the_workers_streams() {
    let s = server(10_000).await;
    let mut w = open(&url(&s), "w", &["x"], 1).await.unwrap();
    let stopping = tokio::spawn(s.stop());
    let end = tokio::time::timeout(Duration::from_secs(20), w.rx.message())
        .await
        .expect("the stream ends");
    let status = end.expect_err("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    stopping.await.unwrap();
}

/// `config.queue_timeout_ms` bounds the wait for a worker.
#[tokio::test]
async fn the_queue_timeout_bounds_the_wait_for_a_worker() {
    let mut s = server(10_000).await;
    let (_, run, nodes) = s
        .run("name: t\nnodes:\n  job: {agent: worker://absent, config: {queue_timeout_ms: 200}, outputs: [result]}\n")
        .await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32);
    assert!(
        nodes[0]
            .error
            .contains("no worker for 'absent' took the task within 200 ms"),
        "{}",
        nodes[0].error
    );
    assert_eq!(nodes[0].error_origin, pb::FailureOrigin::Timeout as i32);
}

/// The deadline counts from when a worker takes the task: time in the
/// queue does not use it up, and a worker past it is told to stop.
#[tokio::test]
async fn the_deadline_starts_when_a_worker_takes_the_task() {
    let mut s = server(10_000).await;
    let run = s
        .start_run("name: d\nnodes:\n  a: {agent: worker://dl, deadline_ms: 300, outputs: [result]}\n  b: {agent: worker://dl, deadline_ms: 300, outputs: [result], depends_on: [a]}\n")
        .await;
    // Longer in the queue than the deadline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut w = open(&url(&s), "dl", &["dl"], 1).await.unwrap();
    let a = w.task().await;
    w.complete(&a, &[("result", "in time")], "");
    // b is taken and never answered: the deadline cuts it off.
    let b = w.task().await;
    assert_eq!(b.node_id, "b");
    match w.next().await {
        pb::work_response::Kind::Cancelled(c) => assert_eq!(c.task_id, b.task_id),
        other => panic!("expected b cancelled, got {other:?}"),
    }
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32);
    assert_eq!(nodes[0].status, pb::NodeStatus::Completed as i32);
    assert!(
        nodes[1].error.contains("deadline of 300 ms exceeded"),
        "{}",
        nodes[1].error
    );
}

/// What a worker streams and reports reaches watchers live (not stored).
#[tokio::test]
async fn a_workers_text_and_progress_reach_watchers() {
    let mut s = server(10_000).await;
    let mut w = open(&url(&s), "p", &["talk"], 1).await.unwrap();
    let run = s
        .start_run("name: p\nnodes:\n  say: {agent: worker://talk, outputs: [result]}\n")
        .await;
    let mut watch = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let task = w.task().await;
    // Seen live once the node has started.
    loop {
        let e = watch.next().await.unwrap().unwrap().event.unwrap();
        if e.kind == pb::EventKind::NodeStarted as i32 {
            break;
        }
    }
    w.tx.send(req(pb::work_request::Kind::Progress(pb::TaskProgress {
        task_id: task.task_id.clone(),
        message: "halfway".into(),
        fraction: Some(0.5),
    })))
    .unwrap();
    w.tx.send(req(pb::work_request::Kind::Delta(pb::TaskDelta {
        task_id: task.task_id.clone(),
        text: "hel".into(),
    })))
    .unwrap();
    w.complete(&task, &[("result", "hello")], "");
    let mut seen = Vec::new();
    while let Some(e) = watch.next().await {
        seen.push(e.unwrap().event.unwrap());
    }
    let progress = seen
        .iter()
        .find(|e| e.kind == pb::EventKind::NodeProgress as i32)
        .expect("a progress event");
    assert_eq!(
        (progress.message.as_str(), progress.progress),
        ("halfway", Some(0.5))
    );
    assert_eq!(progress.sequence, 0, "not stored");
    let delta = seen
        .iter()
        .find(|e| e.kind == pb::EventKind::NodeOutputDelta as i32)
        .expect("a delta");
    assert_eq!(delta.delta, "hel");
    let stored = s.events(&run.id, 0).await;
    assert!(
        stored
            .iter()
            .all(|e| e.kind != pb::EventKind::NodeProgress as i32)
    );
}
