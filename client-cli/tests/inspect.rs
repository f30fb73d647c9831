//! Looking into finished runs: cost, debug, trace and their JSON, on runs
//! with failures, skips and replays, against the real engine in-process.

mod common;

use common::*;
use retake_cli::cli::*;
use retake_cli::commands;
use retake_cli::follow::{Collect, Interrupt};
use retake_cli::render::{Output, Style};

async fn run_file(
    env: &Embedded,
    name: &str,
    content: &str,
    vars: &[&str],
) -> commands::RunSummary {
    let wf = write(env.dir.path(), name, content);
    let args = RunArgs {
        file: wf,
        vars: vars.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    commands::run::run(
        &env.clients,
        &args,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap()
    .summary
}

async fn replay_from(env: &Embedded, run_id: &str, step: &str) -> commands::RunSummary {
    let args = ReplayArgs {
        run_id: run_id.to_string(),
        from: Some(step.into()),
        ..Default::default()
    };
    commands::replay::replay(
        &env.clients,
        &args,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap()
    .summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_of_a_fresh_run_lists_every_node_and_a_total() {
    let env = embedded().await;
    let run = run_file(&env, "pipeline.yaml", PIPELINE, &["topic=cost"]).await;
    let report = commands::cost::cost(
        &env.clients,
        &CostArgs {
            run_id: run.run_id.clone(),
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = report.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(
        ids,
        ["fetch", "transform", "summarize", "publish"],
        "topological order"
    );
    assert!(
        report
            .nodes
            .iter()
            .all(|n| n.saved.is_none() && n.reused_from_run_id.is_none())
    );

    let text = report.text(Style::PLAIN);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Run {}  report-pipeline  completed", run.run_id)),
        "{text}"
    );
    assert!(
        text.contains("NODE")
            && text.contains("INPUT")
            && text.contains("OUTPUT")
            && text.contains("COST")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fetch ") && l.contains("completed") && l.contains("$0.0000"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TOTAL") && l.contains("$0.0000")),
        "{text}"
    );
    assert!(!text.contains("Saved by reuse"), "{text}");

    let json = report.json();
    assert_eq!(json["run"]["run_id"], run.run_id.as_str());
    assert_eq!(json["nodes"].as_array().unwrap().len(), 4);
    let node = &json["nodes"][0];
    for key in [
        "node_id",
        "node_execution_id",
        "status",
        "agent",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "reused_from_run_id",
        "reused_from_node_execution_id",
        "saved",
        "unpriced",
    ] {
        assert!(node.get(key).is_some(), "node JSON has {key}: {node}");
    }
    assert_eq!(node["agent"], "local://echo");
    assert!(node["saved"].is_null());
    for key in ["input_tokens", "output_tokens", "cost_usd"] {
        assert_eq!(json["total"][key].as_f64(), Some(0.0), "total {key}");
        assert_eq!(json["saved"][key].as_f64(), Some(0.0), "saved {key}");
    }
    assert_eq!(json["reused_nodes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_of_a_replay_shows_reused_nodes_with_what_they_saved() {
    let env = embedded().await;
    let source = run_file(&env, "pipeline.yaml", PIPELINE, &["topic=cost"]).await;
    let replay = replay_from(&env, &source.run_id, "summarize").await;
    // A replay of the replay reuses from where the result was first produced.
    let again = replay_from(&env, &replay.run_id, "publish").await;

    let report = commands::cost::cost(
        &env.clients,
        &CostArgs {
            run_id: replay.run_id.clone(),
        },
    )
    .await
    .unwrap();
    let reused: Vec<&commands::cost::NodeCost> = report
        .nodes
        .iter()
        .filter(|n| n.reused_from_run_id.is_some())
        .collect();
    let names: Vec<&str> = reused.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(names, ["fetch", "transform"]);
    for n in &reused {
        assert_eq!(n.status, "reused");
        assert_eq!(
            n.reused_from_run_id.as_deref(),
            Some(source.run_id.as_str())
        );
        assert!(
            n.reused_from_node_execution_id
                .as_deref()
                .is_some_and(|id| id.starts_with("nex_"))
        );
        assert_eq!((n.input_tokens, n.output_tokens, n.cost_usd), (0, 0, 0.0));
        assert!(
            n.saved.is_some(),
            "the source node was read for {}",
            n.node_id
        );
    }
    let text = report.text(Style::PLAIN);
    assert!(
        text.contains(&format!(
            "Forked from: {} at step 'summarize'",
            source.run_id
        )),
        "{text}"
    );
    let fetch_line = text.lines().find(|l| l.starts_with("fetch ")).unwrap();
    assert!(
        fetch_line.contains("reused")
            && fetch_line.contains(&format!(
                "reused from {}; saved 0 in / 0 out tokens, $0.0000",
                source.run_id
            )),
        "{text}"
    );
    assert!(
        text.contains("Saved by reuse (2 nodes): 0 in / 0 out tokens, $0.0000"),
        "{text}"
    );
    let json = report.json();
    assert_eq!(json["reused_nodes"], 2);
    assert_eq!(
        json["nodes"][0]["reused_from_run_id"],
        source.run_id.as_str()
    );
    assert_eq!(json["nodes"][0]["saved"]["cost_usd"].as_f64(), Some(0.0));
    assert!(json["nodes"][2]["saved"].is_null(), "summarize ran again");

    let report = commands::cost::cost(
        &env.clients,
        &CostArgs {
            run_id: again.run_id.clone(),
        },
    )
    .await
    .unwrap();
    let by_id = |id: &str| {
        report
            .nodes
            .iter()
            .find(|n| n.node_id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_id("fetch").reused_from_run_id.as_deref(),
        Some(source.run_id.as_str())
    );
    assert_eq!(
        by_id("summarize").reused_from_run_id.as_deref(),
        Some(replay.run_id.as_str())
    );
    assert!(
        report
            .nodes
            .iter()
            .filter(|n| n.status == "reused")
            .all(|n| n.saved.is_some())
    );

    let err = commands::cost::cost(
        &env.clients,
        &CostArgs {
            run_id: "run_nonexistent".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Run 'run_nonexistent' not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_names_producers_blockers_and_reuse_sources() {
    let env = embedded().await;
    let failed = run_file(&env, "failing.yaml", FAILING, &[]).await;
    let report = commands::debug::debug(
        &env.clients,
        &DebugArgs {
            run_id: failed.run_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = report.text(Style::PLAIN);
    assert!(text.contains("Blocked by: transform"), "{text}");
    let fetch_art = report.nodes[0].node.output_artifact_ids[0].clone();
    assert!(
        text.contains(&format!("Input artifacts: {fetch_art} (from fetch)")),
        "{text}"
    );
    let json = report.json();
    assert_eq!(json["nodes"][2]["blocked_by"][0], "transform");
    assert_eq!(
        json["nodes"][1]["input_artifacts"][0]["producer_node_id"],
        "fetch"
    );

    let source = run_file(&env, "pipeline.yaml", PIPELINE, &["topic=debug"]).await;
    let replay = replay_from(&env, &source.run_id, "summarize").await;
    let report = commands::debug::debug(
        &env.clients,
        &DebugArgs {
            run_id: replay.run_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = report.text(Style::PLAIN);
    assert!(
        text.contains(&format!(
            "Reused from: run {} (node execution nex_",
            source.run_id
        )),
        "{text}"
    );

    let graph = commands::trace::trace(
        &env.clients,
        &TraceArgs {
            view: Some(TraceView::Graph {
                run_id: failed.run_id.clone(),
            }),
            run_id: None,
        },
    )
    .await
    .unwrap();
    let text = graph.text(Style::PLAIN);
    assert!(
        text.contains("publish  skipped  ← transform  (blocked by transform)"),
        "{text}"
    );
    let graph = commands::trace::trace(
        &env.clients,
        &TraceArgs {
            view: Some(TraceView::Graph {
                run_id: replay.run_id.clone(),
            }),
            run_id: None,
        },
    )
    .await
    .unwrap();
    assert!(
        graph
            .text(Style::PLAIN)
            .contains(&format!("fetch  reused  (from {})", source.run_id))
    );
    assert_eq!(
        graph.json()["nodes"][0]["reused_from_run_id"],
        source.run_id.as_str()
    );

    let node = commands::trace::trace(
        &env.clients,
        &TraceArgs {
            view: Some(TraceView::Node {
                run_id: replay.run_id.clone(),
                step: "summarize".into(),
            }),
            run_id: None,
        },
    )
    .await
    .unwrap();
    let text = node.text(Style::PLAIN);
    assert!(text.contains("(from transform)"), "{text}");
    assert!(text.contains("Attempt 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_truncates_long_content_unless_verbose() {
    let env = embedded().await;
    let long = "x".repeat(1000);
    let run = run_file(&env, "pipeline.yaml", PIPELINE, &[&format!("topic={long}")]).await;
    let args = DebugArgs {
        run_id: run.run_id.clone(),
        node: Some("fetch".into()),
        ..Default::default()
    };
    let text = commands::debug::debug(&env.clients, &args)
        .await
        .unwrap()
        .text(Style::PLAIN);
    assert!(!text.contains(&long), "cut by default");
    assert!(text.contains("use -v to see it in full"), "{text}");
    let args = DebugArgs {
        verbose: true,
        ..args
    };
    let text = commands::debug::debug(&env.clients, &args)
        .await
        .unwrap()
        .text(Style::PLAIN);
    assert!(text.contains(&long), "whole with -v");
    assert!(!text.contains("use -v"), "{text}");
}
