//! Human input and approval waits through real gRPC: the run waits, an
//! answer resumes it, the decision drives `when`, and waits survive a
//! server restart and are re-asked in a replay.

mod common;

use common::*;
use retake::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

const APPROVAL: &str = r#"
name: approval
nodes:
  draft: {agent: local://mock, config: {response: "Quarterly summary"}, outputs: [text]}
  review:
    agent: human://approve
    system_prompt: "Publish this summary?"
    inputs: {summary: "${draft.text}"}
    outputs: [decision, feedback]
    depends_on: [draft]
  publish: {agent: local://echo, when: "${review.decision} == approved", inputs: {text: "${draft.text}"}, outputs: [result], depends_on: [review]}
  revise: {agent: local://echo, when: "${review.decision} == rejected", inputs: {why: "${review.feedback}"}, outputs: [result], depends_on: [review]}
"#;

/// Follows the run until it waits, and returns the wait event.
async fn until_waiting(s: &mut TestServer, run_id: &str) -> pb::Event {
    let mut stream = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run_id.into(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = stream.next().await {
        let e = e.unwrap().event.unwrap();
        if e.kind == pb::EventKind::WaitStarted as i32 {
            return e;
        }
    }
    panic!("the run ended without waiting");
}

fn approve(run: &str, approved: bool, feedback: &str) -> pb::ResolveWaitRequest {
    pb::ResolveWaitRequest {
        run_id: run.into(),
        decision: if approved {
            pb::WaitDecision::Approve
        } else {
            pb::WaitDecision::Reject
        } as i32,
        feedback: feedback.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn approval_resumes_the_run_and_drives_when() {
    let mut s = start().await;
    let run = s.start_run(APPROVAL).await;
    let wait_event = until_waiting(&mut s, &run.id).await;
    assert_eq!(wait_event.node_id, "review");
    assert_eq!(wait_event.message, "Publish this summary?");
    let (waiting, _) = s.get(&run.id).await;
    assert_eq!(run_status(&waiting), pb::RunStatus::Waiting);
    let waits = s
        .runs
        .list_waits(pb::ListWaitsRequest {
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .waits;
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].kind, pb::WaitKind::Approval as i32);
    assert!(
        waits[0].context_json.contains("Quarterly summary"),
        "{}",
        waits[0].context_json
    );
    // The same context as a Struct, key for key.
    let context = waits[0].context.as_ref().expect("the context as a Struct");
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&waits[0].context_json).unwrap();
    assert_eq!(
        context
            .fields
            .keys()
            .collect::<std::collections::BTreeSet<_>>(),
        json.keys().collect::<std::collections::BTreeSet<_>>()
    );

    // The wrong kind of answer is refused and changes nothing.
    let wrong = pb::ResolveWaitRequest {
        run_id: run.id.clone(),
        value: "yes".into(),
        ..Default::default()
    };
    let err = s.runs.resolve_wait(wrong).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("waits for approval"),
        "{}",
        err.message()
    );

    let resolved = s
        .runs
        .resolve_wait(approve(&run.id, false, "too long"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.wait.unwrap().node_id, "review");
    let (done, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&done), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "publish")), pb::NodeStatus::Skipped);
    assert_eq!(status(node(&nodes, "revise")), pb::NodeStatus::Completed);
    assert_eq!(
        s.content(&node(&nodes, "revise").output_artifact_ids[0])
            .await,
        r#"{"why":"too long"}"#
    );
    let review = node(&nodes, "review");
    let decision = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: review.output_artifact_ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decision.artifact.unwrap().origin,
        pb::ArtifactOrigin::Human as i32
    );
    assert_eq!(String::from_utf8(decision.content).unwrap(), "rejected");

    // Answering twice is an error.
    let err = s
        .runs
        .resolve_wait(approve(&run.id, true, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn input_waits_take_a_value_and_must_be_named_when_several() {
    let mut s = start().await;
    let yaml = "name: ask\nnodes:\n  q1: {agent: human://input, system_prompt: \"Name?\", outputs: [answer]}\n  q2: {agent: human://input, outputs: [answer]}\n  greet: {agent: local://echo, inputs: {hello: \"${q1.answer} and ${q2.answer}\"}, outputs: [o], depends_on: [q1, q2]}\n";
    let run = s.start_run(yaml).await;
    until_waiting(&mut s, &run.id).await;
    // Both waits are announced before the answers.
    let waits = loop {
        let w = s
            .runs
            .list_waits(pb::ListWaitsRequest {
                run_id: run.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .waits;
        if w.len() == 2 {
            break w;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(
        waits.iter().map(|w| w.node_id.as_str()).collect::<Vec<_>>(),
        ["q1", "q2"]
    );
    let err = s
        .runs
        .resolve_wait(pb::ResolveWaitRequest {
            run_id: run.id.clone(),
            value: "Ada".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("q1, q2"), "{}", err.message());
    let err = s
        .runs
        .resolve_wait(approve(&run.id, true, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .runs
        .resolve_wait(pb::ResolveWaitRequest {
            run_id: run.id.clone(),
            node_id: "nope".into(),
            value: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    for (n, v) in [("q1", "Ada"), ("q2", "Grace")] {
        s.runs
            .resolve_wait(pb::ResolveWaitRequest {
                run_id: run.id.clone(),
                node_id: n.into(),
                value: v.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let (done, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&done), pb::RunStatus::Completed);
    assert_eq!(
        s.content(&node(&nodes, "greet").output_artifact_ids[0])
            .await,
        r#"{"hello":"Ada and Grace"}"#
    );
}

#[tokio::test]
async fn waits_survive_a_restart_and_replays_ask_again_only_inside_the_replay_set() {
    let s = start().await;
    let mut s = s;
    let run = s.start_run(APPROVAL).await;
    until_waiting(&mut s, &run.id).await;
    let dir = s.stop().await;

    let mut s = start_in(dir, |_| {}).await;
    let (waiting, _) = s.get(&run.id).await;
    assert_eq!(run_status(&waiting), pb::RunStatus::Waiting);
    s.runs
        .resolve_wait(approve(&run.id, true, ""))
        .await
        .unwrap();
    let (done, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&done), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "publish")), pb::NodeStatus::Completed);

    // Outside the replay set the recorded answer is reused.
    let rep = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.id.clone(),
            from_node: "publish".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let (rep, nodes) = s.finish(&rep.id).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "review")), pb::NodeStatus::Reused);
    // The branch a false condition skipped stays skipped.
    assert_eq!(status(node(&nodes, "revise")), pb::NodeStatus::Skipped);
    // Inside it, the node waits again.
    let rep = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.id.clone(),
            from_node: "review".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    until_waiting(&mut s, &rep.id).await;
    s.runs
        .resolve_wait(approve(&rep.id, false, ""))
        .await
        .unwrap();
    let (rep, nodes) = s.finish(&rep.id).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "publish")), pb::NodeStatus::Skipped);
}
