//! The replay rules, one case each.

use super::*;
use crate::engine::workflow::{LoadOptions, load};
use crate::model::*;

fn wf(yaml: &str) -> Workflow {
    let l = load(
        yaml,
        &BTreeMap::new(),
        &BTreeMap::new(),
        LoadOptions {
            ignore_missing_variables: true,
            ..Default::default()
        },
    );
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.workflow.unwrap()
}

fn records(w: &Workflow, status: &[(&str, NodeStatus)]) -> Vec<NodeExecution> {
    w.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeExecution {
            pk: i as i64 + 1,
            id: format!("nex_{i:04}_{}", n.id),
            run_id: "run_src".into(),
            node_id: n.id.clone(),
            position: i as i32,
            status: status
                .iter()
                .find(|(id, _)| *id == n.id)
                .map(|(_, s)| *s)
                .unwrap_or(NodeStatus::Completed),
            agent: n.agent.clone(),
            config_json: "{}".into(),
            prompt: None,
            model: None,
            inputs_json: None,
            input_artifacts: vec![],
            output_artifacts: vec![format!("art_{}", n.id)],
            error: None,
            error_origin: None,
            started_at: None,
            finished_at: None,
            latency_ms: None,
            usage: Usage::default(),
            attempt_count: 1,
            attempts: vec![],
            blocked_by: vec![],
            reused_from_run: None,
            reused_from_node_execution: None,
            depends_on: n.depends_on.clone(),
        })
        .collect()
}

const DIAMOND: &str = "name: d\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, outputs: [o], depends_on: [a]}\n  c: {agent: local://echo, outputs: [o], depends_on: [a]}\n  d: {agent: local://echo, outputs: [o], depends_on: [b, c]}\n";

fn names(w: &Workflow, set: &BTreeSet<usize>) -> Vec<String> {
    set.iter().map(|&p| w.nodes[p].id.clone()).collect()
}

#[test]
fn a_reference_to_an_output_the_reused_record_lacks_is_refused_even_with_drift() {
    let source = wf(
        "name: r\nnodes:\n  src: {agent: local://echo, outputs: [res]}\n  use: {agent: local://echo, depends_on: [src], inputs: {x: \"${src.res}\"}, outputs: [o]}\n",
    );
    let renamed = wf(
        "name: r\nnodes:\n  src: {agent: local://echo, outputs: [result]}\n  use: {agent: local://echo, depends_on: [src], inputs: {x: \"${src.result}\"}, outputs: [o]}\n",
    );
    let changes = ReplayChanges {
        from: Some("use".into()),
        allow_drift: true,
        ..Default::default()
    };
    let err = plan_replay(
        "run_src",
        &source,
        &records(&source, &[]),
        &renamed,
        &changes,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("'use' uses ${src.result}"), "{err}");
    assert!(err.contains("Replay from 'src'"), "{err}");
}

#[test]
fn checkpoint_selectors_take_the_reading_that_exists() {
    let w = wf(
        "name: c\nnodes:\n  checkpoint: {agent: local://echo, outputs: [result, notes]}\n  notes: {agent: local://echo, depends_on: [checkpoint], outputs: [o]}\n  draft: {agent: local://echo, depends_on: [checkpoint], outputs: [o]}\n  end: {agent: local://echo, depends_on: [notes, draft], outputs: [o]}\n",
    );
    let plan = |selector: &str| {
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: selector.into(),
                output: String::new(),
                value: "v".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        plan_replay("run_src", &w, &records(&w, &[]), &w, &changes)
    };
    let p = plan("checkpoint.result").unwrap();
    assert_eq!(p.overrides[0].selector, "checkpoint");
    assert_eq!(p.overrides[0].output, "result");
    let p = plan("checkpoint.draft").unwrap();
    assert_eq!(p.overrides[0].selector, "draft");
    let err = plan("checkpoint.notes").unwrap_err().to_string();
    assert!(
        err.contains("ambiguous") && err.contains("node 'notes'"),
        "{err}"
    );
}

#[test]
fn overriding_a_node_nothing_consumes_is_a_replay_of_its_own() {
    let w = wf(DIAMOND);
    let changes = ReplayChanges {
        overrides: vec![OutputOverride {
            selector: "d".into(),
            output: String::new(),
            value: "final".into(),
            source: String::new(),
        }],
        ..Default::default()
    };
    let plan = plan_replay("run_src", &w, &records(&w, &[]), &w, &changes).unwrap();
    assert!(plan.replay_set.is_empty());
    assert_eq!(plan.forked_at_step, "d");
    assert_eq!(plan.reused.len(), 3);
}

#[test]
fn a_wait_cannot_be_overridden() {
    let w = wf(
        "name: g\nnodes:\n  draft: {agent: local://echo, outputs: [o]}\n  review: {agent: \"human://approve\", depends_on: [draft], outputs: [decision]}\n",
    );
    let changes = ReplayChanges {
        overrides: vec![OutputOverride {
            selector: "review".into(),
            output: String::new(),
            value: "approved".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = plan_replay("run_src", &w, &records(&w, &[]), &w, &changes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("asks again"), "{err}");
}

#[test]
fn a_workflow_sharing_no_node_is_not_a_replay_unless_drift_is_allowed() {
    let w = wf(DIAMOND);
    let other = wf("name: o\nnodes:\n  x: {agent: local://echo, outputs: [o]}\n");
    let mut changes = ReplayChanges::default();
    let err = plan_replay("run_src", &w, &records(&w, &[]), &other, &changes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shares no node"), "{err}");
    changes.allow_drift = true;
    plan_replay("run_src", &w, &records(&w, &[]), &other, &changes).unwrap();
}

#[test]
fn replaying_from_a_branch_reuses_its_sibling() {
    let w = wf(DIAMOND);
    let src = records(&w, &[]);
    let plan = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("b".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(names(&w, &plan.replay_set), ["b", "d"]);
    let reused: Vec<&str> = plan
        .reused
        .keys()
        .map(|&p| w.nodes[p].id.as_str())
        .collect();
    assert_eq!(reused, ["a", "c"]);
    assert_eq!(plan.forked_at_step, "b");
}

#[test]
fn a_swap_is_a_root_even_without_from() {
    let w = wf(DIAMOND);
    let src = records(&w, &[]);
    let changes = ReplayChanges {
        swaps: vec![AgentSwap {
            node_id: "c".into(),
            agent: "local://mock".into(),
        }],
        ..Default::default()
    };
    let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
    assert_eq!(names(&w, &plan.replay_set), ["c", "d"]);
    assert_eq!(plan.agents[w.index["c"]], "local://mock");
    assert_eq!(plan.forked_at_step, "c");
    let bad = ReplayChanges {
        swaps: vec![AgentSwap {
            node_id: "zz".into(),
            agent: "local://mock".into(),
        }],
        ..Default::default()
    };
    assert!(
        matches!(plan_replay("run_src", &w, &src, &w, &bad), Err(EngineError::InvalidArgument(m)) if m.contains("'zz' not found"))
    );
}

#[test]
fn an_override_reruns_every_direct_consumer_but_not_the_node() {
    let w = wf(DIAMOND);
    let src = records(&w, &[]);
    let changes = ReplayChanges {
        overrides: vec![OutputOverride {
            selector: "checkpoint.a".into(),
            output: String::new(),
            value: "edited".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
    assert_eq!(plan.roots, ["b", "c"]);
    assert_eq!(names(&w, &plan.replay_set), ["b", "c", "d"]);
    assert_eq!(plan.overridden[&w.index["a"]]["o"], "edited");
    assert!(plan.reused.is_empty());
}

#[test]
fn a_multi_output_override_must_name_the_output() {
    let w = wf(
        "name: m\nnodes:\n  a: {agent: local://echo, outputs: [x, y]}\n  b: {agent: local://echo, outputs: [o], depends_on: [a]}\n",
    );
    let src = records(&w, &[]);
    let changes = ReplayChanges {
        overrides: vec![OutputOverride {
            selector: "a".into(),
            output: String::new(),
            value: "v".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = plan_replay("run_src", &w, &src, &w, &changes).unwrap_err();
    assert!(err.to_string().contains("several outputs (x, y)"), "{err}");
    let changes = ReplayChanges {
        overrides: vec![OutputOverride {
            selector: "a".into(),
            output: "y".into(),
            value: "v".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
    assert_eq!(names(&w, &plan.replay_set), ["b"]);
}

#[test]
fn nothing_to_reuse_names_the_node_and_suggests_replaying_from_it() {
    let w = wf(DIAMOND);
    let src = records(&w, &[("c", NodeStatus::Failed), ("d", NodeStatus::Skipped)]);
    let err = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("b".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::FailedPrecondition(m) if m.contains("'c' (failed)") && !m.contains("--")),
        "{err}"
    );
    // The step to replay from, for a client to offer, and what stands in
    // the way, node by node.
    let detail = &err.problem().unwrap().detail;
    assert_eq!(err.reason_or_default(), Reason::ReplayInvalid);
    assert!(detail.metadata.contains(&("fromNode".into(), "c".into())));
    assert_eq!(detail.preconditions[0].kind, "NOT_REUSABLE");
    assert_eq!(detail.preconditions[0].subject, "c");
    let plan = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("c".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(names(&w, &plan.replay_set), ["c", "d"]);
}

#[test]
fn a_condition_skip_outside_the_replay_set_carries_over() {
    let w = wf(DIAMOND);
    let src = records(&w, &[("c", NodeStatus::Skipped)]);
    let plan = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("d".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        plan.carried_skips
            .keys()
            .map(|&p| w.nodes[p].id.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    let mut blocked = records(&w, &[("c", NodeStatus::Skipped)]);
    blocked[w.index["c"]].blocked_by = vec!["b".into()];
    assert!(
        plan_replay(
            "run_src",
            &w,
            &blocked,
            &w,
            &ReplayChanges {
                from: Some("d".into()),
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn drift_outside_the_replay_set_is_refused_unless_allowed() {
    let old = wf(DIAMOND);
    let new = wf(&DIAMOND.replace(
        "c: {agent: local://echo",
        "c: {agent: local://mock, config: {response: x}",
    ));
    let src = records(&old, &[]);
    let changes = ReplayChanges {
        from: Some("b".into()),
        ..Default::default()
    };
    let err = plan_replay("run_src", &old, &src, &new, &changes).unwrap_err();
    assert!(
        matches!(&err, EngineError::FailedPrecondition(m) if m.contains("drift") && m.contains("'c'") && !m.contains("--")),
        "{err}"
    );
    assert_eq!(err.reason_or_default(), Reason::ReplayDrift);
    let detail = &err.problem().unwrap().detail;
    assert!(detail.metadata.contains(&("nodeIds".into(), "c".into())));
    assert_eq!(
        (
            detail.preconditions[0].kind.as_str(),
            detail.preconditions[0].subject.as_str()
        ),
        ("DRIFT", "c")
    );
    let allowed = ReplayChanges {
        allow_drift: true,
        ..changes
    };
    assert_eq!(
        plan_replay("run_src", &old, &src, &new, &allowed)
            .unwrap()
            .drifted,
        ["c"]
    );
}

#[test]
fn changed_variables_and_new_nodes_are_roots() {
    let old = wf(
        "name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, inputs: {t: \"${user.topic}\"}, outputs: [o], depends_on: [a]}\n",
    );
    let new = wf(
        "name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, inputs: {t: \"${user.topic}\"}, outputs: [o], depends_on: [a]}\n  z: {agent: local://echo, outputs: [o], depends_on: [a]}\n",
    );
    let src = records(&old, &[]);
    let changes = ReplayChanges {
        changed_variables: ["topic".to_string()].into(),
        ..Default::default()
    };
    let plan = plan_replay("run_src", &old, &src, &new, &changes).unwrap();
    assert_eq!(plan.roots, ["b", "z"]);
    let err = plan_replay("run_src", &old, &src, &old, &ReplayChanges::default()).unwrap_err();
    assert!(err.to_string().starts_with("Nothing to replay"));
}

#[test]
fn steps_are_node_ids_or_execution_id_prefixes() {
    let w = wf(DIAMOND);
    let src = records(&w, &[]);
    let plan = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("nex_0002".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plan.forked_at_step, "c");
    let err = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("nex_000".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("ambiguous"), "{err}");
    let err = plan_replay(
        "run_src",
        &w,
        &src,
        &w,
        &ReplayChanges {
            from: Some("x".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "Step 'x' not found in workflow");
}
