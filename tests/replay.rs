//! Replay and diff through real gRPC (docs/replay.md): only the replay set runs
//! again, everything else is reused by reference.

mod common;

use common::*;
use retake::v1 as pb;
use tonic::Code;

const DIAMOND: &str = r#"
name: diamond
nodes:
  a: {agent: local://echo, inputs: {topic: "${user.topic}"}, outputs: [out]}
  b: {agent: local://mock, config: {response: "b says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
  c: {agent: local://mock, config: {response: "c says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
  d: {agent: local://echo, inputs: {b: "${b.out}", c: "${c.out}"}, outputs: [out], depends_on: [b, c]}
"#;

fn replay_req(run: &str) -> pb::ReplayRunRequest {
    pb::ReplayRunRequest {
        run_id: run.to_string(),
        ..Default::default()
    }
}

fn swap(node: &str, agent: &str) -> pb::AgentSwap {
    pb::AgentSwap {
        node_id: node.into(),
        agent: agent.into(),
    }
}

async fn replay(
    s: &mut TestServer,
    req: pb::ReplayRunRequest,
) -> (pb::Run, Vec<pb::NodeExecution>) {
    let run = s
        .runs
        .replay_run(req)
        .await
        .expect("ReplayRun")
        .into_inner()
        .run
        .unwrap();
    s.finish(&run.id).await
}

async fn source(s: &mut TestServer) -> (pb::Run, Vec<pb::NodeExecution>) {
    let run = s.start_run_vars(DIAMOND, &[("topic", "rust")]).await;
    s.finish(&run.id).await
}

#[tokio::test]
async fn replaying_one_branch_reuses_the_sibling_by_reference() {
    let mut s = start().await;
    let (src, src_nodes) = source(&mut s).await;
    let (rep, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            from_node: "b".into(),
            ..replay_req(&src.id)
        },
    )
    .await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    let info = rep.replay.as_ref().unwrap();
    assert_eq!(info.forked_from, src.id);
    assert_eq!(info.forked_at_step, "b");
    assert_eq!(info.replay_set, ["b", "d"]);
    for id in ["a", "c"] {
        let n = node(&nodes, id);
        assert_eq!(status(n), pb::NodeStatus::Reused, "{id}");
        assert_eq!(n.reused_from_run_id, src.id);
        assert_eq!(
            n.output_artifact_ids,
            node(&src_nodes, id).output_artifact_ids,
            "{id} is reused by reference"
        );
    }
    for id in ["b", "d"] {
        let n = node(&nodes, id);
        assert_eq!(status(n), pb::NodeStatus::Completed);
        assert_ne!(
            n.output_artifact_ids,
            node(&src_nodes, id).output_artifact_ids,
            "{id} ran again"
        );
    }
    let counts = rep.counts.unwrap();
    assert_eq!(
        (counts.total, counts.completed, counts.reused, counts.failed),
        (4, 4, 2, 0)
    );
    // The replayed consumer saw the reused sibling's output.
    let d = s.content(&node(&nodes, "d").output_artifact_ids[0]).await;
    assert_eq!(d, r#"{"b":"b says hi","c":"c says hi"}"#);
    // The replay's artifacts include what it reused.
    let listed = s
        .artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            run_id: rep.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.artifacts.len(), 4);
    let events = s.events(&rep.id, 0).await;
    // One event announces every reused node.
    let reused: Vec<&pb::Event> = events
        .iter()
        .filter(|e| e.kind == pb::EventKind::NodeReused as i32)
        .collect();
    assert_eq!(reused.len(), 1);
    assert_eq!(reused[0].node_id, "");
    assert_eq!(reused[0].node_ids, ["a", "c"]);
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == pb::EventKind::NodeStarted as i32)
        .map(|e| e.node_id.as_str())
        .collect();
    assert_eq!(started, ["b", "d"]);
}

#[tokio::test]
async fn a_failing_swapped_node_fails_the_replay() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let req = pb::ReplayRunRequest {
        swaps: vec![swap("c", "local://fail")],
        ..replay_req(&src.id)
    };
    let (rep, nodes) = replay(&mut s, req).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Failed);
    assert_eq!(rep.replay.as_ref().unwrap().forked_at_step, "c");
    assert_eq!(node(&nodes, "c").agent, "local://fail");
    assert_eq!(status(node(&nodes, "c")), pb::NodeStatus::Failed);
    assert_eq!(status(node(&nodes, "d")), pb::NodeStatus::Skipped);
    assert_eq!(status(node(&nodes, "b")), pb::NodeStatus::Reused);
    let counts = rep.counts.unwrap();
    assert_eq!((counts.completed, counts.failed), (2, 1));
}

#[tokio::test]
async fn a_swapped_agent_gets_the_nodes_own_config() {
    let mut s = start().await;
    let yaml = "name: cfg\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  gen: {agent: local://echo, config: {response: from config}, outputs: [o], depends_on: [a]}\n";
    let run = s.start_run(yaml).await;
    s.finish(&run.id).await;
    let (rep, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            swaps: vec![swap("gen", "local://mock")],
            ..replay_req(&run.id)
        },
    )
    .await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    assert_eq!(
        s.content(&node(&nodes, "gen").output_artifact_ids[0]).await,
        "from config"
    );
}

#[tokio::test]
async fn an_override_feeding_two_consumers_reruns_both_branches() {
    let mut s = start().await;
    let (src, src_nodes) = source(&mut s).await;
    let req = pb::ReplayRunRequest {
        overrides: vec![pb::OutputOverride {
            selector: "checkpoint.a".into(),
            output: String::new(),
            value: "Edited notes".into(),
            ..Default::default()
        }],
        swaps: vec![swap("b", "local://echo"), swap("c", "local://echo")],
        ..replay_req(&src.id)
    };
    let (rep, nodes) = replay(&mut s, req).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    let a = node(&nodes, "a");
    assert_eq!(a.attempt_count, 0, "an overridden node never executes");
    assert_ne!(
        a.output_artifact_ids,
        node(&src_nodes, "a").output_artifact_ids
    );
    let art = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: a.output_artifact_ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        art.artifact.unwrap().origin,
        pb::ArtifactOrigin::Override as i32
    );
    assert_eq!(String::from_utf8(art.content).unwrap(), "Edited notes");
    for id in ["b", "c"] {
        assert_eq!(
            s.content(&node(&nodes, id).output_artifact_ids[0]).await,
            r#"{"x":"Edited notes"}"#
        );
    }
    // Without swaps, the override alone makes both consumers roots.
    let req = pb::ReplayRunRequest {
        overrides: vec![pb::OutputOverride {
            selector: "a".into(),
            output: String::new(),
            value: "v2".into(),
            ..Default::default()
        }],
        ..replay_req(&src.id)
    };
    let (rep, _) = replay(&mut s, req).await;
    assert_eq!(rep.replay.unwrap().roots, ["b", "c"]);
}

#[tokio::test]
async fn drift_is_refused_then_allowed() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let drifted = DIAMOND.replace("c says hi", "c changed");
    let req = pb::ReplayRunRequest {
        from_node: "b".into(),
        workflow: drifted.clone(),
        ..replay_req(&src.id)
    };
    let err = s.runs.replay_run(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("'c'") && err.message().contains("allow drift"),
        "{}",
        err.message()
    );
    let (rep, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            allow_drift: true,
            ..req
        },
    )
    .await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    assert_eq!(status(node(&nodes, "c")), pb::NodeStatus::Reused);
    // A new node in the workflow is a root of its own.
    let grown = format!("{DIAMOND}  e: {{agent: local://echo, outputs: [out], depends_on: [a]}}\n");
    let (rep, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            workflow: grown,
            ..replay_req(&src.id)
        },
    )
    .await;
    assert_eq!(rep.replay.unwrap().roots, ["e"]);
    assert_eq!(status(node(&nodes, "e")), pb::NodeStatus::Completed);
}

#[tokio::test]
async fn a_changed_variable_reruns_the_nodes_that_use_it() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let req = pb::ReplayRunRequest {
        variables: [("topic".to_string(), "go".to_string())].into(),
        ..replay_req(&src.id)
    };
    let (rep, nodes) = replay(&mut s, req).await;
    assert_eq!(rep.replay.as_ref().unwrap().changed_variables, ["topic"]);
    assert_eq!(rep.replay.unwrap().replay_set, ["a", "b", "c", "d"]);
    assert_eq!(
        s.content(&node(&nodes, "a").output_artifact_ids[0]).await,
        r#"{"topic":"go"}"#
    );
}

#[tokio::test]
async fn replays_of_replays_resolve_reused_results_to_where_they_were_produced() {
    let mut s = start().await;
    let (src, src_nodes) = source(&mut s).await;
    let (r1, _) = replay(
        &mut s,
        pb::ReplayRunRequest {
            from_node: "d".into(),
            ..replay_req(&src.id)
        },
    )
    .await;
    let (r2, _) = replay(
        &mut s,
        pb::ReplayRunRequest {
            from_node: "c".into(),
            ..replay_req(&r1.id)
        },
    )
    .await;
    let (r3, n3) = replay(
        &mut s,
        pb::ReplayRunRequest {
            from_node: "d".into(),
            ..replay_req(&r2.id)
        },
    )
    .await;
    assert_eq!(run_status(&r3), pb::RunStatus::Completed);
    assert_eq!(r3.replay.as_ref().unwrap().forked_from, r2.id);
    let a = node(&n3, "a");
    assert_eq!(
        a.reused_from_run_id, src.id,
        "a was produced by the original run"
    );
    assert_eq!(
        a.output_artifact_ids,
        node(&src_nodes, "a").output_artifact_ids
    );
    assert_eq!(node(&n3, "c").reused_from_run_id, r2.id);
    // Lineage of the final output crosses the replays back to the source.
    let d = &node(&n3, "d").output_artifact_ids[0];
    let lineage = s
        .artifacts
        .get_artifact_lineage(pb::GetArtifactLineageRequest {
            artifact_id: d.clone(),
            max_depth: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let runs: Vec<&str> = lineage
        .entries
        .iter()
        .map(|e| e.artifact.as_ref().unwrap().run_id.as_str())
        .collect();
    assert!(
        runs.contains(&src.id.as_str()) && runs.contains(&r2.id.as_str()),
        "{runs:?}"
    );
}

#[tokio::test]
async fn the_ab_pattern_two_replays_and_three_diffs() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let mock = |text: &str| pb::ReplayRunRequest {
        from_node: "b".into(),
        workflow: DIAMOND.replace("b says hi", text),
        allow_drift: true,
        ..replay_req(&src.id)
    };
    let (ra, _) = replay(&mut s, mock("variant A")).await;
    let (rb, _) = replay(&mut s, mock("variant B")).await;
    for (x, y) in [(&src.id, &ra.id), (&src.id, &rb.id), (&ra.id, &rb.id)] {
        let diff = s
            .runs
            .diff_runs(pb::DiffRunsRequest {
                run_a: x.clone(),
                run_b: y.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let summary = diff.summary.unwrap();
        assert_eq!(
            (
                summary.changed,
                summary.unchanged,
                summary.only_in_a,
                summary.only_in_b
            ),
            (2, 2, 0, 0)
        );
        let b = diff.nodes.iter().find(|n| n.node_id == "b").unwrap();
        assert!(b.changed && b.outputs[0].changed);
        assert!(
            b.outputs[0].text_diff.contains("-") && b.outputs[0].text_diff.contains("+"),
            "{}",
            b.outputs[0].text_diff
        );
        let c = diff.nodes.iter().find(|n| n.node_id == "c").unwrap();
        assert!(!c.changed);
        // The runs part at b; d is downstream of it, c (b's sibling) not.
        assert_eq!(diff.first_divergence, "b");
        assert_eq!(diff.after_divergence, ["d"]);
    }
    let same = s
        .runs
        .diff_runs(pb::DiffRunsRequest {
            run_a: src.id.clone(),
            run_b: src.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.summary.unwrap().unchanged, 4);
    assert_eq!(same.first_divergence, "");
    assert!(same.after_divergence.is_empty());

    // Every node run again, each giving the same output: the runs never
    // part, though latencies differ.
    let echo_again = pb::ReplayRunRequest {
        from_node: "a".into(),
        ..replay_req(&src.id)
    };
    let (same_out, _) = replay(&mut s, echo_again).await;
    let diff = s
        .runs
        .diff_runs(pb::DiffRunsRequest {
            run_a: src.id.clone(),
            run_b: same_out.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(diff.first_divergence, "", "{:?}", diff.nodes);
}

#[tokio::test]
async fn replay_errors_say_what_is_wrong() {
    let mut s = start().await;
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from_node: "b".into(),
            ..replay_req("run_nonexistent")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "Run 'run_nonexistent' not found");

    let (src, _) = source(&mut s).await;
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from_node: "x".into(),
            ..replay_req(&src.id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "Step 'x' not found in workflow");

    let err = s.runs.replay_run(replay_req(&src.id)).await.unwrap_err();
    assert!(
        err.message().starts_with("Nothing to replay"),
        "{}",
        err.message()
    );

    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            swaps: vec![swap("b", "bogus")],
            ..replay_req(&src.id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A node that failed in the source has nothing to reuse.
    let failing = DIAMOND.replace("c: {agent: local://mock", "c: {agent: local://fail");
    let run = s.start_run_vars(&failing, &[("topic", "t")]).await;
    s.finish(&run.id).await;
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from_node: "b".into(),
            ..replay_req(&run.id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("'c' (failed)") && err.message().contains("from_node 'c'"),
        "{}",
        err.message()
    );

    // A run still executing cannot be replayed.
    let slow = s
        .start_run(
            "name: slow\nnodes:\n  s: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n",
        )
        .await;
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from_node: "s".into(),
            ..replay_req(&slow.id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    s.runs
        .cancel_run(pb::CancelRunRequest {
            run_id: slow.id.clone(),
        })
        .await
        .unwrap();
    // Once cancelled it can.
    let rep = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from_node: "s".into(),
            swaps: vec![swap("s", "local://echo")],
            ..replay_req(&slow.id)
        })
        .await
        .unwrap();
    let (rep, _) = s.finish(&rep.into_inner().run.unwrap().id).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
}

#[tokio::test]
async fn a_replay_of_a_replay_keeps_the_agents_it_swapped_in() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let (r1, _) = replay(
        &mut s,
        pb::ReplayRunRequest {
            swaps: vec![swap("b", "local://echo")],
            ..replay_req(&src.id)
        },
    )
    .await;
    let (r2, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            from_node: "b".into(),
            ..replay_req(&r1.id)
        },
    )
    .await;
    assert_eq!(run_status(&r2), pb::RunStatus::Completed);
    assert_eq!(node(&nodes, "b").agent, "local://echo");
    assert_eq!(
        s.content(&node(&nodes, "b").output_artifact_ids[0]).await,
        r#"{"x":{"topic":"rust"}}"#
    );
    assert_eq!(r2.replay.unwrap().swaps, vec![swap("b", "local://echo")]);
}

#[tokio::test]
async fn an_overridden_node_is_recorded_as_given_not_as_run() {
    let mut s = start().await;
    let (src, src_nodes) = source(&mut s).await;
    let req = pb::ReplayRunRequest {
        overrides: vec![pb::OutputOverride {
            selector: "b".into(),
            output: String::new(),
            value: "from a file".into(),
            source: "@notes.txt".into(),
        }],
        ..replay_req(&src.id)
    };
    let (rep, nodes) = replay(&mut s, req).await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    // Where the value came from travels with the run, as the client said it.
    let given = &rep.replay.as_ref().unwrap().overrides;
    assert_eq!(
        (
            given[0].selector.as_str(),
            given[0].output.as_str(),
            given[0].source.as_str()
        ),
        ("b", "out", "@notes.txt")
    );
    let b = node(&nodes, "b");
    assert_eq!(status(b), pb::NodeStatus::Completed);
    assert_eq!(b.model, "override", "the record says it was given");
    assert_eq!(b.attempt_count, 0);
    assert!(b.attempts.is_empty());
    assert_eq!(b.config_json, "", "no config: it did not run");
    assert!(b.start_time.is_none(), "it never started");
    // Decided as the run was created, so no earlier.
    assert!(micros(&b.finish_time) >= micros(&rep.create_time));
    // No node of the replay starts before the run does.
    let run_start = micros(&rep.start_time);
    for n in &nodes {
        if n.start_time.is_some() {
            assert!(
                micros(&n.start_time) >= run_start,
                "{} starts before its run",
                n.node_id
            );
        }
    }

    // Reused artifacts are listed as reused, with the run that produced them.
    let listed = s
        .artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            run_id: rep.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    let of = |id: &str| {
        listed
            .iter()
            .find(|a| a.node_id == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    let a = of("a");
    assert_eq!(a.origin, pb::ArtifactOrigin::Reused as i32);
    assert_eq!(a.run_id, src.id);
    assert_eq!(a.id, node(&src_nodes, "a").output_artifact_ids[0]);
    assert_eq!(of("b").origin, pb::ArtifactOrigin::Override as i32);
    assert_eq!(of("b").run_id, rep.id);
    for id in ["c", "d"] {
        // c is reused, d ran again because b's output changed.
        let expected = if id == "c" {
            pb::ArtifactOrigin::Reused
        } else {
            pb::ArtifactOrigin::Executed
        };
        assert_eq!(of(id).origin, expected as i32, "{id}");
    }
    // "latest" names the same run for the listing and for what it reused.
    let latest = s
        .artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            run_id: "latest".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    assert_eq!(latest, listed);
    // The artifact itself still says where it was produced.
    let art = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .artifact
        .unwrap();
    assert_eq!(art.origin, pb::ArtifactOrigin::Executed as i32);

    // Reuse events carry only the node; the node's artifacts are on the
    // record GetRun returns.
    let events = s.events(&rep.id, 0).await;
    let reused = events
        .iter()
        .find(|e| e.kind == pb::EventKind::NodeReused as i32)
        .unwrap();
    assert_eq!(reused.node_ids, ["a", "c"]);
    assert!(reused.artifact_ids.is_empty());
    assert_eq!(
        node(&nodes, "a").output_artifact_ids,
        node(&src_nodes, "a").output_artifact_ids
    );
    let given = events.iter().find(|e| e.node_id == "b").unwrap();
    assert_eq!(given.kind, pb::EventKind::NodeCompleted as i32);
    assert_eq!(given.message, "output overridden");
    assert_eq!(given.artifact_ids, b.output_artifact_ids);
}

#[tokio::test]
async fn overriding_a_node_nothing_consumes_records_the_value_in_a_replay() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    let (rep, nodes) = replay(
        &mut s,
        pb::ReplayRunRequest {
            overrides: vec![pb::OutputOverride {
                selector: "d".into(),
                output: String::new(),
                value: "final word".into(),
                ..Default::default()
            }],
            ..replay_req(&src.id)
        },
    )
    .await;
    assert_eq!(run_status(&rep), pb::RunStatus::Completed);
    for id in ["a", "b", "c"] {
        assert_eq!(status(node(&nodes, id)), pb::NodeStatus::Reused, "{id}");
    }
    let d = node(&nodes, "d");
    assert_eq!(s.content(&d.output_artifact_ids[0]).await, "final word");
}

/// `from` is a keyword in Python: `from_node` names the step; the old
/// field still works, alone or agreeing, and a disagreement is refused.
#[tokio::test]
#[allow(deprecated)]
async fn from_node_names_the_step_and_the_deprecated_from_still_works() {
    let mut s = start().await;
    let (src, _) = source(&mut s).await;
    for (from, from_node) in [("", "b"), ("b", ""), ("b", "b")] {
        let (rep, _) = replay(
            &mut s,
            pb::ReplayRunRequest {
                from: from.into(),
                from_node: from_node.into(),
                ..replay_req(&src.id)
            },
        )
        .await;
        let at = rep.replay.expect("a replay").forked_at_step;
        assert_eq!(at, "b", "from {from:?}, from_node {from_node:?}");
    }
    let err = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            from: "b".into(),
            from_node: "c".into(),
            ..replay_req(&src.id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("from_node 'c'"), "{}", err.message());
}

/// Latencies come as a Duration too.
#[tokio::test]
async fn node_latency_is_also_a_duration() {
    let mut s = start().await;
    let (_, nodes) = source(&mut s).await;
    for n in &nodes {
        let d = n.latency.expect("a latency");
        assert_eq!(
            d.seconds * 1000 + i64::from(d.nanos) / 1_000_000,
            n.latency_ms,
            "{}",
            n.node_id
        );
    }
}

/// A node's config and inputs come as Structs too, equal to their JSON.
#[tokio::test]
async fn node_config_and_inputs_are_also_structs() {
    let mut s = start().await;
    let (_, nodes) = source(&mut s).await;
    let text = |st: &prost_types::Struct, key: &str| match &st.fields[key].kind {
        Some(prost_types::value::Kind::StringValue(v)) => v.clone(),
        other => panic!("{key}: {other:?}"),
    };
    let a = nodes.iter().find(|n| n.node_id == "a").unwrap();
    assert_eq!(text(a.inputs.as_ref().expect("inputs"), "topic"), "rust");
    let b = nodes.iter().find(|n| n.node_id == "b").unwrap();
    assert_eq!(
        text(b.config.as_ref().expect("config"), "response"),
        "b says hi"
    );
    let json: serde_json::Value = serde_json::from_str(&b.config_json).unwrap();
    assert_eq!(json["response"], "b says hi");
}
