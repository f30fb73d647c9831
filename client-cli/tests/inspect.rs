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
        change: ChangeArgs {
            from: Some(step.into()),
            ..Default::default()
        },
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

/// Collects what a sink writes.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Replays `run_id` with `overrides`, returning the summary and the lines
/// the replay printed as it went.
async fn replay_with(
    env: &Embedded,
    run_id: &str,
    overrides: &[&str],
) -> (commands::RunSummary, String) {
    let args = ReplayArgs {
        run_id: run_id.to_string(),
        change: ChangeArgs {
            overrides: overrides.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Shared::default();
    let mut sink = retake_cli::follow::TextProgress::new(Style::PLAIN, false, false)
        .to_writer(Box::new(out.clone()));
    let summary = commands::replay::replay(&env.clients, &args, &mut sink, &Interrupt::Never)
        .await
        .unwrap()
        .summary;
    (summary, out.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overridden_node_shows_as_overridden_with_where_its_value_came_from() {
    let env = embedded().await;
    let source = run_file(&env, "pipeline.yaml", PIPELINE, &["topic=given"]).await;

    // A value given as is.
    let (replay, lines) = replay_with(&env, &source.run_id, &["transform=edited facts"]).await;
    assert_eq!(replay.status, "completed");
    assert!(
        lines.contains("  ↷ transform overridden: result = \"edited facts\"\n"),
        "{lines}"
    );
    assert!(!lines.contains("transform completed"), "{lines}");
    assert!(lines.contains("  ✓ summarize completed"), "{lines}");

    let debug = |node: &str, run_id: &str| {
        let args = DebugArgs {
            run_id: run_id.to_string(),
            node: Some(node.to_string()),
            ..Default::default()
        };
        let clients = env.clients.clone();
        async move { commands::debug::debug(&clients, &args).await.unwrap() }
    };
    let report = debug("transform", &replay.run_id).await;
    let text = report.text(Style::PLAIN);
    assert!(
        text.contains("● transform  overridden (local://mock not run)\n"),
        "{text}"
    );
    assert!(
        text.contains("    Overridden: result = \"edited facts\"\n"),
        "{text}"
    );
    assert!(!text.contains("Model:"), "{text}");
    let json = report.json();
    let node = &json["nodes"][0];
    assert_eq!(node["status"], "completed");
    assert_eq!(node["overridden"], true);
    assert_eq!(node["overrides"][0]["output"], "result");
    assert!(node["overrides"][0]["source"].is_null());
    assert!(
        node["model"].is_null() && node["config"].is_null(),
        "{node}"
    );
    assert!(node["started_at"].is_null(), "{node}");
    // Nodes that ran are not overridden.
    let ran = debug("summarize", &replay.run_id).await.json();
    assert_eq!(ran["nodes"][0]["overridden"], false);

    // Nor does cost name a model it ran.
    let cost = commands::cost::cost(
        &env.clients,
        &CostArgs {
            run_id: replay.run_id.clone(),
        },
    )
    .await
    .unwrap();
    let transform = cost
        .nodes
        .iter()
        .find(|n| n.node_id == "transform")
        .unwrap();
    assert_eq!(transform.model, None);

    // A value read from a file says which file.
    let file = write(env.dir.path(), "facts.txt", "facts from a file\n");
    let flag = format!("transform=@{}", file.display());
    let (from_file, lines) = replay_with(&env, &source.run_id, &[&flag]).await;
    assert!(
        lines.contains(&format!(
            "  ↷ transform overridden: result from @{}\n",
            file.display()
        )),
        "{lines}"
    );
    let text = debug("transform", &from_file.run_id)
        .await
        .text(Style::PLAIN);
    assert!(
        text.contains(&format!(
            "    Overridden: result from @{}\n",
            file.display()
        )),
        "{text}"
    );
    let json = debug("transform", &from_file.run_id).await.json();
    assert_eq!(
        json["nodes"][0]["overrides"][0]["source"],
        format!("@{}", file.display())
    );

    // The timeline and the graph say it too; nothing starts before the run.
    let trace = |view: Option<TraceView>, run_id: Option<String>| {
        let clients = env.clients.clone();
        async move {
            commands::trace::trace(&clients, &TraceArgs { view, run_id })
                .await
                .unwrap()
        }
    };
    let timeline = trace(None, Some(replay.run_id.clone())).await;
    let text = timeline.text(Style::PLAIN);
    let row = text
        .lines()
        .find(|l| l.contains(" transform "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.trim_end().ends_with("transform  overridden"), "{text}");
    assert!(!text.contains("+-"), "{text}");
    let json = timeline.json();
    for n in json["nodes"].as_array().unwrap() {
        assert!(n["offset_ms"].as_i64().is_none_or(|ms| ms >= 0), "{json}");
        assert_eq!(n["overridden"], n["node_id"] == "transform", "{n}");
    }
    let graph = trace(
        Some(TraceView::Graph {
            run_id: replay.run_id.clone(),
        }),
        None,
    )
    .await;
    let text = graph.text(Style::PLAIN);
    assert!(
        text.contains("  ↷ transform  overridden  ← fetch  (result = \"edited facts\")\n"),
        "{text}"
    );
    let node = trace(
        Some(TraceView::Node {
            run_id: replay.run_id.clone(),
            step: "transform".into(),
        }),
        None,
    )
    .await;
    let text = node.text(Style::PLAIN);
    assert!(
        text.contains("Overridden: result = \"edited facts\"") && !text.contains("Config:"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_of_a_replay_say_which_were_reused_and_from_which_run() {
    let env = embedded().await;
    let source = run_file(&env, "pipeline.yaml", PIPELINE, &["topic=reuse"]).await;
    let replay = replay_from(&env, &source.run_id, "summarize").await;
    let list = commands::artifacts::list(
        &env.clients,
        &ArtifactsListArgs {
            run_id: replay.run_id.clone(),
        },
    )
    .await
    .unwrap();
    let text = list.text(Style::PLAIN);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("  ORIGIN  ") && header.contains("  RUN  "),
        "{text}"
    );
    // ARTIFACT ID, NODE, NAME, ORIGIN, RUN, …
    let columns = |node: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|cols| cols[1] == node)
            .unwrap_or_else(|| panic!("{text}"))
    };
    for node in ["fetch", "transform"] {
        assert_eq!(columns(node)[3..5], ["reused", &source.run_id], "{text}");
    }
    for node in ["summarize", "publish"] {
        assert_eq!(columns(node)[3..5], ["executed", &replay.run_id], "{text}");
    }
    let json = list.json();
    for a in json.as_array().unwrap() {
        let reused = a["node_id"] == "fetch" || a["node_id"] == "transform";
        let (origin, run) = if reused {
            ("reused", &source.run_id)
        } else {
            ("executed", &replay.run_id)
        };
        assert_eq!(a["origin"], origin, "{a}");
        assert_eq!(a["run_id"], run.as_str(), "{a}");
    }
    // A fresh run reuses nothing: no RUN column.
    let list = commands::artifacts::list(
        &env.clients,
        &ArtifactsListArgs {
            run_id: source.run_id.clone(),
        },
    )
    .await
    .unwrap();
    assert!(!list.text(Style::PLAIN).contains("RUN"));
}
