//! Errors as a client written from the .proto files sees them: every status
//! carries google.rpc details (docs/errors.md) — an ErrorInfo whose reason
//! says what happened, and BadRequest, PreconditionFailure or RetryInfo
//! where they apply — read here with tonic-types, the standard decoder,
//! over real gRPC. Messages name no CLI flags: the CLI adds its own hints.

mod common;

use common::*;
use retake::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The ErrorInfo's reason, after checking its domain.
fn reason(status: &Status) -> String {
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "retake");
    info.reason.clone()
}

fn metadata(status: &Status, key: &str) -> String {
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    info.metadata
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", info.metadata))
        .clone()
}

fn no_cli_flags(status: &Status) {
    assert!(!status.message().contains("--"), "{}", status.message());
}

const DIAMOND: &str = r#"
name: diamond
nodes:
  a: {agent: local://echo, inputs: {topic: "${user.topic}"}, outputs: [out]}
  b: {agent: local://mock, config: {response: "b says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
  c: {agent: local://mock, config: {response: "c says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
"#;

#[tokio::test]
async fn unknown_ids_are_not_found_by_kind() {
    let mut s = start().await;
    let err = s
        .runs
        .get_run(pb::GetRunRequest {
            run_id: "run_nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "RUN_NOT_FOUND");
    assert_eq!(metadata(&err, "runId"), "run_nope");

    let err = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: "art_nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ARTIFACT_NOT_FOUND");
    assert_eq!(metadata(&err, "artifactId"), "art_nope");

    let run = s.start_run_vars(DIAMOND, &[("topic", "t")]).await;
    s.finish(&run.id).await;
    let err = s
        .runs
        .get_node_execution(pb::GetNodeExecutionRequest {
            run_id: run.id.clone(),
            step: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "NODE_NOT_FOUND");
    assert_eq!(metadata(&err, "nodeId"), "zz");
}

#[tokio::test]
async fn an_invalid_workflow_lists_each_problem_as_a_field_violation() {
    let mut s = start().await;
    let yaml = "name: bad\nnodes:\n  a: {outputs: [o]}\n  b: {agent: local://echo, inputs: {q: \"${user.q}\"}, outputs: [o], depends_on: [a]}\n";
    let err = s.try_start_run(yaml, &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "WORKFLOW_INVALID");
    assert_eq!(metadata(&err, "missingVariables"), "q");
    no_cli_flags(&err);
    let details = err.get_error_details();
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["nodes.a.agent", "nodes.b.inputs"],
        "{violations:?}"
    );
    assert!(
        violations[0].description.starts_with("line 3: node 'a': "),
        "{:?}",
        violations[0].description
    );
}

#[tokio::test]
async fn replay_refusals_say_which_nodes_stand_in_the_way() {
    let mut s = start().await;
    let run = s.start_run_vars(DIAMOND, &[("topic", "t")]).await;
    s.finish(&run.id).await;

    // Drift: PreconditionFailure names each drifted node.
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.id.clone(),
            from_node: "b".into(),
            workflow: DIAMOND.replace("c says hi", "c changed"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "REPLAY_DRIFT");
    assert_eq!(metadata(&err, "nodeIds"), "c");
    assert_eq!(metadata(&err, "runId"), run.id);
    no_cli_flags(&err);
    let details = err.get_error_details();
    let violations = &details
        .precondition_failure()
        .expect("PreconditionFailure")
        .violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(
        (
            violations[0].r#type.as_str(),
            violations[0].subject.as_str()
        ),
        ("DRIFT", "c")
    );

    // An unknown step.
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.id.clone(),
            from_node: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "REPLAY_INVALID");

    // A run not finished yet.
    let slow = s
        .start_run(
            "name: slow\nnodes:\n  a: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n",
        )
        .await;
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: slow.id.clone(),
            from_node: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "RUN_NOT_FINISHED");
    let details = err.get_error_details();
    let violations = &details
        .precondition_failure()
        .expect("PreconditionFailure")
        .violations;
    assert_eq!(
        (
            violations[0].r#type.as_str(),
            violations[0].subject.as_str()
        ),
        ("RUN_STATUS", slow.id.as_str())
    );
}

#[tokio::test]
async fn a_busy_server_says_when_to_retry() {
    let mut s = start_with(|c| c.max_concurrent_runs = 1).await;
    let slow =
        "name: slow\nnodes:\n  a: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n";
    s.start_run(slow).await;
    let err = s.try_start_run(slow, &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason(&err), "SERVER_BUSY");
    assert_eq!(metadata(&err, "limit"), "1");
    let details = err.get_error_details();
    let delay = details
        .retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(delay.as_millis() > 0);
}

#[tokio::test]
async fn limits_tokens_and_request_ids_have_reasons_too() {
    let mut s = start_with(|c| c.max_workflow_bytes = 1000).await;
    let err = s
        .try_start_run(
            &format!("name: big\n# {}\nnodes: {{}}\n", "x".repeat(2000)),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "LIMIT_EXCEEDED");
    assert_eq!(metadata(&err, "limit"), "1000");

    let err = s
        .runs
        .list_runs(pb::ListRunsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "PAGE_TOKEN_INVALID");

    let start = |workflow: &str| pb::StartRunRequest {
        workflow: workflow.into(),
        request_id: "req-1".into(),
        ..Default::default()
    };
    let first = s
        .runs
        .start_run(start(
            "name: one\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n",
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let err = s
        .runs
        .start_run(start(
            "name: two\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");
    assert_eq!(metadata(&err, "runId"), first.id);
}

#[tokio::test]
async fn requests_refused_before_a_handler_carry_details() {
    let s = start_with(|c| c.auth_token = Some("sesame".into())).await;
    let err = s
        .runs
        .clone()
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "UNAUTHENTICATED");
}
