//! Running workflows end to end through real gRPC: scheduling, failures,
//! conditions, retries, cancellation, event streams and bad input.

mod common;

use common::*;
use retake::v1 as pb;
use tonic::Code;

const DIAMOND: &str = r#"
name: diamond
nodes:
  a: {agent: local://echo, inputs: {x: "1"}, outputs: [out]}
  b: {agent: local://sleep, config: {ms: 300}, outputs: [out], depends_on: [a]}
  c: {agent: local://sleep, config: {ms: 300}, outputs: [out], depends_on: [a]}
  d: {agent: local://echo, inputs: {b: "${b.out}", c: "${c.out}"}, outputs: [out], depends_on: [b, c]}
"#;

#[tokio::test]
async fn diamond_branches_overlap_and_outputs_flow_downstream() {
    let mut s = start().await;
    let run = s.start_run(DIAMOND).await;
    assert!(run.id.starts_with("run_"));
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Completed);
    assert_eq!(run.counts.as_ref().unwrap().completed, 4);
    let (b, c) = (node(&nodes, "b"), node(&nodes, "c"));
    // Independent branches run at the same time.
    assert!(
        micros(&b.start_time) < micros(&c.finish_time)
            && micros(&c.start_time) < micros(&b.finish_time)
    );
    let d = node(&nodes, "d");
    let out = s.content(&d.output_artifact_ids[0]).await;
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["b"]["a"]["x"], "1", "{out}");
    assert_eq!(d.input_artifact_ids.len(), 2);
    // Artifact ids are unique across runs.
    let run2 = s.start_run(DIAMOND).await;
    let (_, nodes2) = s.finish(&run2.id).await;
    assert_ne!(
        node(&nodes2, "d").output_artifact_ids,
        d.output_artifact_ids
    );
}

#[tokio::test]
async fn failure_skips_dependents_and_fails_the_run() {
    let mut s = start().await;
    let yaml = r#"
name: failing
nodes:
  a: {agent: local://echo, outputs: [out]}
  broken: {agent: local://fail, config: {message: "schema validation failed"}, outputs: [out], depends_on: [a]}
  after: {agent: local://echo, outputs: [out], depends_on: [broken]}
  last: {agent: local://echo, outputs: [out], depends_on: [after]}
  side: {agent: local://echo, outputs: [out], depends_on: [a]}
"#;
    let run = s.start_run(yaml).await;
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert_eq!(failure.node_id, "broken");
    assert_eq!(failure.message, "schema validation failed");
    assert_eq!(failure.origin, pb::FailureOrigin::Agent as i32);
    assert_eq!(status(node(&nodes, "broken")), pb::NodeStatus::Failed);
    assert_eq!(status(node(&nodes, "after")), pb::NodeStatus::Skipped);
    assert_eq!(node(&nodes, "after").blocked_by, vec!["broken"]);
    assert_eq!(status(node(&nodes, "last")), pb::NodeStatus::Skipped);
    assert_eq!(node(&nodes, "last").blocked_by, vec!["after"]);
    assert_eq!(status(node(&nodes, "side")), pb::NodeStatus::Completed);
    let counts = run.counts.unwrap();
    assert_eq!((counts.completed, counts.failed, counts.skipped), (2, 1, 2));
}

#[tokio::test]
async fn when_false_skips_the_node_and_nodes_that_depend_only_on_it() {
    let mut s = start().await;
    let yaml = r#"
name: gate
nodes:
  review: {agent: local://mock, config: {response: rejected}, outputs: [decision]}
  publish: {agent: local://echo, when: "${review.decision} == approved", outputs: [out], depends_on: [review]}
  announce: {agent: local://echo, outputs: [out], depends_on: [publish]}
  notify: {agent: local://echo, when: "${review.decision} != approved", outputs: [out], depends_on: [review]}
  report: {agent: local://echo, outputs: [out], depends_on: [publish, notify]}
"#;
    let run = s.start_run(yaml).await;
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "publish")), pb::NodeStatus::Skipped);
    assert!(
        node(&nodes, "publish").error.contains("condition"),
        "{}",
        node(&nodes, "publish").error
    );
    assert_eq!(status(node(&nodes, "announce")), pb::NodeStatus::Skipped);
    assert_eq!(status(node(&nodes, "notify")), pb::NodeStatus::Completed);
    // One dependency ran, so the join runs.
    assert_eq!(status(node(&nodes, "report")), pb::NodeStatus::Completed);
}

#[tokio::test]
async fn retries_count_attempts() {
    let mut s = start().await;
    let yaml = r#"
name: retry
defaults: {retry_policy: {max_retries: 3, backoff: fixed, initial_delay_ms: 1}}
nodes:
  flaky: {agent: local://fail, config: {times: 2, message: "try again"}, outputs: [out]}
  hopeless: {agent: local://fail, config: {times: 5}, retry_policy: {max_retries: 2, backoff: exponential, initial_delay_ms: 1}, outputs: [out]}
"#;
    let run = s.start_run(yaml).await;
    let events = s.events(&run.id, 0).await;
    let (run, nodes) = s.get(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    let flaky = node(&nodes, "flaky");
    assert_eq!(status(flaky), pb::NodeStatus::Completed);
    assert_eq!(flaky.attempt_count, 3);
    assert_eq!(flaky.attempts[0].error, "try again");
    assert!(flaky.attempts[2].error.is_empty());
    let hopeless = node(&nodes, "hopeless");
    assert_eq!(status(hopeless), pb::NodeStatus::Failed);
    assert_eq!(hopeless.attempt_count, 2);
    let retrying = events
        .iter()
        .filter(|e| e.kind == pb::EventKind::NodeRetrying as i32)
        .count();
    assert_eq!(retrying, 3);
}

#[tokio::test]
async fn deadline_fails_the_node_with_timeout_origin() {
    let mut s = start().await;
    let run = s.start_run("name: slow\nnodes:\n  s: {agent: local://sleep, config: {ms: 60000}, deadline_ms: 50, outputs: [out]}\n").await;
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    assert_eq!(
        run.failure.unwrap().origin,
        pb::FailureOrigin::Timeout as i32
    );
    assert!(node(&nodes, "s").error.contains("deadline of 50 ms"));
}

#[tokio::test]
async fn cancel_interrupts_a_running_sleep() {
    let mut s = start().await;
    let run = s
        .start_run("name: long\nnodes:\n  s: {agent: local://sleep, config: {ms: 600000}, outputs: [out]}\n  t: {agent: local://echo, outputs: [out], depends_on: [s]}\n")
        .await;
    // Wait until the sleep has started.
    let mut stream = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = tokio_stream::StreamExt::next(&mut stream).await {
        if e.unwrap().event.unwrap().kind == pb::EventKind::NodeStarted as i32 {
            break;
        }
    }
    let cancelled = s
        .runs
        .cancel_run(pb::CancelRunRequest {
            run_id: run.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(run_status(&cancelled), pb::RunStatus::Cancelled);
    let (_, nodes) = s.get(&run.id).await;
    assert_eq!(status(node(&nodes, "s")), pb::NodeStatus::Cancelled);
    assert_eq!(status(node(&nodes, "t")), pb::NodeStatus::Cancelled);
    let again = s
        .runs
        .cancel_run(pb::CancelRunRequest {
            run_id: run.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn watch_resumes_from_any_sequence_without_gaps_or_duplicates() {
    let mut s = start().await;
    let run = s.start_run(DIAMOND).await;
    let all = s.events(&run.id, 0).await;
    let seqs: Vec<i64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>());
    assert_eq!(all.first().unwrap().kind, pb::EventKind::RunStarted as i32);
    assert_eq!(all.last().unwrap().kind, pb::EventKind::RunFinished as i32);
    for k in 0..=all.len() as i64 {
        let tail = s.events(&run.id, k).await;
        let got: Vec<i64> = tail.iter().map(|e| e.sequence).collect();
        assert_eq!(
            got,
            ((k + 1)..=all.len() as i64).collect::<Vec<_>>(),
            "resuming after {k}"
        );
    }
}

#[tokio::test]
async fn a_watcher_that_joins_mid_run_sees_every_event_once() {
    let mut s = start().await;
    let yaml = "name: chain\nnodes:\n  a: {agent: local://sleep, config: {ms: 50}, outputs: [o]}\n  b: {agent: local://sleep, config: {ms: 50}, outputs: [o], depends_on: [a]}\n  c: {agent: local://sleep, config: {ms: 50}, outputs: [o], depends_on: [b]}\n";
    let run = s.start_run(yaml).await;
    let mut stream = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(
            tokio_stream::StreamExt::next(&mut stream)
                .await
                .unwrap()
                .unwrap()
                .event
                .unwrap()
                .sequence,
        );
    }
    drop(stream);
    let rest: Vec<i64> = s
        .events(&run.id, *first.last().unwrap())
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    let all: Vec<i64> = first.into_iter().chain(rest).collect();
    assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn list_runs_paginates_newest_first_with_filters() {
    let mut s = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let yaml = format!(
            "name: wf{}\nnodes:\n  a: {{agent: local://echo, outputs: [o]}}\n",
            i % 2
        );
        let run = s.start_run(&yaml).await;
        s.finish(&run.id).await;
        ids.push(run.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .runs
            .list_runs(pb::ListRunsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.runs.iter().map(|r| r.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let wf1 = s
        .runs
        .list_runs(pb::ListRunsRequest {
            workflow_name: "wf1".into(),
            status: pb::RunStatus::Completed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wf1.runs.len(), 2);
    // A token is bound to the filters it was issued for.
    let first = s
        .runs
        .list_runs(pb::ListRunsRequest {
            workflow_name: "wf0".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let other = s
        .runs
        .list_runs(pb::ListRunsRequest {
            workflow_name: "wf1".into(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(
        other.message().contains("other filters"),
        "{}",
        other.message()
    );
    let same = s
        .runs
        .list_runs(pb::ListRunsRequest {
            workflow_name: "wf0".into(),
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.runs[0].workflow_name, "wf0");
    let bad = s
        .runs
        .list_runs(pb::ListRunsRequest {
            page_token: "garbage!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    // `latest` and unique prefixes name runs.
    let latest = s.get("latest").await.0;
    assert_eq!(latest.id, ids[0]);
    let prefix = &ids[0][..ids[0].len() - 4];
    assert_eq!(s.get(prefix).await.0.id, ids[0]);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_server_stays_up() {
    let mut s = start().await;
    let start = |w: String| pb::StartRunRequest {
        workflow: w,
        ..Default::default()
    };

    let err = s
        .runs
        .start_run(start("name: x\nnodes: [unclosed".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not valid YAML"),
        "{}",
        err.message()
    );

    let cyclic = "name: c\nnodes:\n  s: {agent: local://echo, outputs: [o]}\n  a: {agent: local://echo, outputs: [o], depends_on: [s, b]}\n  b: {agent: local://echo, outputs: [o], depends_on: [a]}\n";
    let err = s.runs.start_run(start(cyclic.into())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("dependency cycle"),
        "{}",
        err.message()
    );

    let unknown =
        "name: u\nnodes:\n  a: {agent: local://echo, outputs: [o], inputs: {x: \"${ghost.o}\"}}\n";
    let err = s.runs.start_run(start(unknown.into())).await.unwrap_err();
    assert!(
        err.message().contains("unknown node 'ghost'"),
        "{}",
        err.message()
    );

    let huge = format!(
        "name: big\n# {}\nnodes:\n  a: {{agent: local://echo, outputs: [o]}}\n",
        "x".repeat(50 << 20)
    );
    let err = s.runs.start_run(start(huge)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());

    let deep = format!(
        "name: deep\nnodes:\n  a: {{agent: local://echo, outputs: [o], inputs: {{x: {}{}}}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = s.runs.start_run(start(deep)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = s
        .runs
        .get_run(pb::GetRunRequest {
            run_id: "run_nonexistent".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "Run 'run_nonexistent' not found");
    let err = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: "nope".into(),
            after_sequence: -3,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: "art_\u{0}\u{7f}'; DROP TABLE runs".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = s
        .runs
        .list_runs(pb::ListRunsRequest {
            status: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .runs
        .get_node_execution(pb::GetNodeExecutionRequest {
            run_id: "latest".into(),
            step: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Still serving, and nothing stored was touched.
    let run = s
        .start_run("name: ok\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n")
        .await;
    let (run, _) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Completed);
    let listed = s
        .runs
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.runs.len(), 1);
}

#[tokio::test]
async fn validate_reports_every_error_with_lines() {
    let mut s = start().await;
    let yaml = "name: v\nextra: 1\nnodes:\n  a:\n    agent: local://nope\n    outputs: []\n  b:\n    agent: local://echo\n    outputs: [o]\n    depends_on: [zzz]\n";
    let resp = s
        .workflows
        .validate_workflow(pb::ValidateWorkflowRequest {
            workflow: yaml.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.valid);
    assert_eq!(resp.node_count, 2);
    let msgs: Vec<(String, i32, String)> = resp
        .errors
        .iter()
        .map(|e| (e.node_id.clone(), e.line, e.message.clone()))
        .collect();
    assert!(
        msgs.iter()
            .any(|(n, l, m)| n == "a" && *l == 4 && m.contains("unknown local agent")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|(n, _, m)| n == "a" && m.contains("`outputs` is empty")),
        "{msgs:?}"
    );
    assert_eq!(resp.warnings.len(), 1);
}

#[tokio::test]
async fn variables_fill_inputs_and_a_missing_one_is_an_error() {
    let mut s = start().await;
    let yaml = "name: vars\nnodes:\n  fetch: {agent: local://echo, inputs: {topic: \"${user.topic}\"}, outputs: [result]}\n";
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: yaml.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("no variable 'topic'"),
        "{}",
        err.message()
    );
    let run = s.start_run_vars(yaml, &[("topic", "rust")]).await;
    let (_, nodes) = s.finish(&run.id).await;
    assert_eq!(
        s.content(&node(&nodes, "fetch").output_artifact_ids[0])
            .await,
        r#"{"topic":"rust"}"#
    );
}

#[tokio::test]
async fn a_configuration_error_fails_the_node_at_once_and_a_transient_one_is_retried() {
    let mut s = start().await;
    let yaml = "name: cfg\nnodes:\n  bad:\n    agent: local://sleep\n    config: {ms: soon}\n    retry_policy: {max_retries: 3, backoff: fixed, initial_delay_ms: 1}\n    outputs: [o]\n  flaky:\n    agent: local://fail\n    config: {times: 2}\n    retry_policy: {max_retries: 3, backoff: fixed, initial_delay_ms: 1}\n    outputs: [o]\n";
    let run = s.start_run(yaml).await;
    let (_, nodes) = s.finish(&run.id).await;
    let bad = node(&nodes, "bad");
    assert_eq!(status(bad), pb::NodeStatus::Failed);
    assert_eq!(bad.attempt_count, 1, "{}", bad.error);
    assert!(bad.error.contains("config.ms"), "{}", bad.error);
    let flaky = node(&nodes, "flaky");
    assert_eq!(status(flaky), pb::NodeStatus::Completed);
    assert_eq!(flaky.attempt_count, 3);
}

/// A 5 MB artifact: GetArtifact refuses it, naming ReadArtifact, which
/// streams it in chunks of at most 1 MiB, whole or a range.
#[tokio::test]
async fn large_artifacts_are_read_in_chunks() {
    use tokio_stream::StreamExt;
    let mut s = start().await;
    let big: String = (0..5_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let run = s
        .start_run_vars(
            "name: big\nnodes:\n  a: {agent: local://echo, inputs: {text: \"${user.big}\"}, outputs: [result]}\n",
            &[("big", &big)],
        )
        .await;
    let (_, nodes) = s.finish(&run.id).await;
    let id = nodes[0].output_artifact_ids[0].clone();
    let err = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("ReadArtifact"), "{}", err.message());

    let read = |offset: i64, limit: i64| {
        let mut artifacts = s.artifacts.clone();
        let id = id.clone();
        async move {
            let mut stream = artifacts
                .read_artifact(pb::ReadArtifactRequest {
                    artifact_id: id,
                    offset,
                    limit,
                })
                .await?
                .into_inner();
            let mut chunks = Vec::new();
            while let Some(chunk) = stream.next().await {
                chunks.push(chunk?);
            }
            Ok::<_, tonic::Status>(chunks)
        }
    };
    let chunks = read(0, 0).await.unwrap();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
    let size = chunks[0]
        .artifact
        .as_ref()
        .expect("metadata first")
        .size_bytes;
    assert_eq!(whole.len() as i64, size);
    assert!(size >= 5_000_000);
    assert!(chunks.iter().all(|c| c.data.len() <= 1 << 20));
    assert!(chunks[1..].iter().all(|c| c.artifact.is_none()));
    let mut at = 0;
    for c in &chunks {
        assert_eq!(c.offset, at);
        at += c.data.len() as i64;
    }
    let range: Vec<u8> = read(1_500_000, 2_000_000)
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.data.clone())
        .collect();
    assert_eq!(range, whole[1_500_000..3_500_000]);
    let err = read(size + 1, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let err = read(-1, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
