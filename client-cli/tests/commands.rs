//! The commands called in-process against the real engine, as a user
//! would see their results: summaries, exit codes, errors and JSON.

mod common;

use common::*;
use retake::v1::{Event, EventKind, StartRunRequest};
use retake_cli::cli::*;
use retake_cli::commands::{self, RunEnd};
use retake_cli::follow::{Collect, Interrupt};
use retake_cli::render::{Output, Style};
use std::collections::HashMap;
use std::sync::Arc;

fn run_args(file: std::path::PathBuf, vars: &[&str]) -> RunArgs {
    RunArgs {
        file,
        vars: vars.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

async fn run_pipeline(env: &Embedded) -> commands::RunOutcome {
    let wf = write(env.dir.path(), "pipeline.yaml", PIPELINE);
    commands::run::run(
        &env.clients,
        &run_args(wf, &["topic=replay"]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .expect("run succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_events_and_summarises() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "pipeline.yaml", PIPELINE);
    let mut events = Collect::default();
    let out = commands::run::run(
        &env.clients,
        &run_args(wf, &["topic=replay"]),
        &mut events,
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(out.end, RunEnd::Finished);
    assert_eq!(out.exit_code(), 0);
    assert_eq!(out.hint(), None);
    let s = &out.summary;
    assert_eq!(
        (
            s.status.as_str(),
            s.total_nodes,
            s.completed_nodes,
            s.failed_nodes
        ),
        ("completed", 4, 4, 0)
    );
    assert!(s.run_id.starts_with("run_"));
    let text = out.text(Style::PLAIN);
    assert_eq!(
        text,
        format!(
            "Run ID: {}\nWorkflow: report-pipeline\nStatus: completed\nNodes: 4/4 completed\n",
            s.run_id
        )
    );
    for node in ["fetch", "transform", "summarize", "publish"] {
        assert!(
            node_kinds(&events.0, node).contains(&EventKind::NodeCompleted),
            "{node} completed"
        );
    }
    let last = events.0.last().unwrap();
    assert_eq!(last.kind(), EventKind::RunFinished);
    // Sequence numbers start at 1 and have no gaps.
    for (i, e) in events.0.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1);
    }

    let json = out.json();
    for key in [
        "run_id",
        "workflow_name",
        "status",
        "total_nodes",
        "completed_nodes",
        "failed_nodes",
        "skipped_nodes",
        "reused_nodes",
        "forked_from",
        "forked_at_step",
        "started_at",
        "finished_at",
    ] {
        assert!(json.get(key).is_some(), "JSON summary has {key}");
    }
    assert_eq!(json["status"], "completed");
    assert!(json["forked_from"].is_null() && json["forked_at_step"].is_null());
    let started = json["started_at"].as_str().unwrap();
    assert!(
        started.contains('T') && started.ends_with('Z'),
        "RFC 3339: {started}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_run_exits_1_with_a_tip() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "failing.yaml", FAILING);
    let mut events = Collect::default();
    let out = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut events,
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "failed");
    assert_eq!(out.exit_code(), 1);
    assert_eq!(
        out.hint(),
        Some(format!(
            "Tip: run 'retake debug {} --errors'",
            out.summary.run_id
        ))
    );
    let text = out.text(Style::PLAIN);
    assert!(
        text.contains("Status: failed\nNodes: 1/3 completed\nFailed: 1\nSkipped: 1\n"),
        "{text}"
    );
    let failed = events
        .0
        .iter()
        .find(|e| e.kind() == EventKind::NodeFailed)
        .unwrap();
    assert_eq!(failed.node_id, "transform");
    let line = retake_cli::follow::TextProgress::line(Style::PLAIN, false, failed).unwrap();
    assert_eq!(line, "  ✗ transform failed: boom");

    let debug = commands::debug::debug(
        &env.clients,
        &DebugArgs {
            run_id: out.summary.run_id.clone(),
            errors: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = debug
        .nodes
        .iter()
        .map(|n| n.node.node_id.as_str())
        .collect();
    assert_eq!(ids, ["transform", "publish"]);
    let text = debug.text(Style::PLAIN);
    assert!(text.contains("Error: boom"), "{text}");
    assert!(text.contains("Blocked by: transform"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "pipeline.yaml", PIPELINE);
    let err = commands::run::run(
        &env.clients,
        &run_args(wf.clone(), &["topic"]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Invalid variable format: topic (expected key=value)"
    );
    assert_eq!(err.code, 2);

    // A missing variable is the server's validation error: INVALID_ARGUMENT, exit 2.
    let err = commands::run::run(
        &env.clients,
        &run_args(wf.clone(), &[]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 2, "{}", err.message);
    assert!(err.message.contains("topic"), "{}", err.message);
    // The server names no flag; the CLI's hint does, from the error's details.
    assert!(
        err.message
            .ends_with("\nhint: give the missing variables: --var topic=VALUE"),
        "{}",
        err.message
    );

    let detach = RunArgs {
        detach: true,
        ..run_args(wf, &["topic=x"])
    };
    let err = commands::run::run(
        &env.clients,
        &detach,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "--detach needs a server (--server or RETAKE_SERVER); without one the run lives in this process"
    );
    assert_eq!(err.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_files_travel_with_the_workflow() {
    let env = embedded().await;
    write(
        env.dir.path(),
        "prompts/facts.md",
        "Extract the key facts, carefully.",
    );
    let wf = write(
        env.dir.path(),
        "wf.yaml",
        "name: prompts\nnodes:\n  a:\n    agent: local://mock\n    system_prompt: file://prompts/facts.md\n    config: {response: ok}\n    outputs: [result]\n",
    );
    let out = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "completed");
    let node = commands::trace::node(&env.clients, &out.summary.run_id, "a")
        .await
        .unwrap();
    assert!(
        node.report
            .node
            .prompt
            .contains("Extract the key facts, carefully."),
        "{:?}",
        node.report.node.prompt
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_an_embedded_run_cancels_it() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "slow.yaml", SLOW);
    let notify = Arc::new(tokio::sync::Notify::new());
    let mut sink = InterruptOnStart {
        notify: notify.clone(),
        events: Vec::new(),
    };
    let out = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut sink,
        &Interrupt::Notify(notify),
    )
    .await
    .unwrap();
    assert_eq!(out.end, RunEnd::Cancelled);
    assert_eq!(out.exit_code(), 130);
    assert_eq!(out.summary.status, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_runs_detach_and_outlive_the_watcher() {
    let server = served(None).await;
    let clients = server.clients(None).await;
    let wf = write(server.dir.path(), "slow.yaml", SLOW);

    let detached = RunArgs {
        detach: true,
        ..run_args(wf.clone(), &[])
    };
    let out = commands::run::run(
        &clients,
        &detached,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(out.end, RunEnd::Detached);
    assert_eq!(out.exit_code(), 0);
    assert_eq!(out.text(Style::PLAIN), format!("{}\n", out.summary.run_id));
    commands::cancel::cancel(
        &clients,
        &CancelArgs {
            run_id: out.summary.run_id.clone(),
        },
    )
    .await
    .unwrap();

    let notify = Arc::new(tokio::sync::Notify::new());
    let mut sink = InterruptOnStart {
        notify: notify.clone(),
        events: Vec::new(),
    };
    let out = commands::run::run(
        &clients,
        &run_args(wf, &[]),
        &mut sink,
        &Interrupt::Notify(notify),
    )
    .await
    .unwrap();
    assert_eq!(out.end, RunEnd::StillRunning);
    assert_eq!(out.exit_code(), 130);
    let id = &out.summary.run_id;
    assert_eq!(
        out.hint(),
        Some(format!(
            "Run {id} continues on the server; follow it with 'retake watch {id}'"
        ))
    );
    let run = commands::get_run(&clients, id).await.unwrap();
    assert_eq!(run.status(), retake::v1::RunStatus::Running);

    let cancelled = commands::cancel::cancel(&clients, &CancelArgs { run_id: id.clone() })
        .await
        .unwrap();
    assert!(
        cancelled
            .text(Style::PLAIN)
            .starts_with(&format!("Run {id} cancelled")),
        "{}",
        cancelled.text(Style::PLAIN)
    );
    // Watching the cancelled run to its end reports it like `run` does.
    let watched = commands::watch::watch(
        &clients,
        &WatchArgs {
            run_id: id.clone(),
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(watched.summary.status, "cancelled");
    assert_eq!(watched.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_sent() {
    let server = served(Some("s3cret")).await;
    let without = server.clients(None).await;
    let err = commands::runs::list(&without, &RunsArgs::default())
        .await
        .unwrap_err();
    assert_eq!(err.grpc_code(), Some(tonic::Code::Unauthenticated));
    assert_eq!(err.code, 1);
    let with = server.clients(Some("s3cret")).await;
    let list = commands::runs::list(&with, &RunsArgs::default())
        .await
        .unwrap();
    assert!(list.runs.is_empty());
    assert_eq!(list.text(Style::PLAIN), "No runs found\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let err = retake_cli::connect::Clients::remote(&url, None, None)
        .await
        .err()
        .unwrap();
    assert!(
        err.message
            .starts_with(&format!("cannot reach retake server at {url}: ")),
        "{}",
        err.message
    );
    assert_eq!(err.code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_a_sequence() {
    let env = embedded().await;
    let out = run_pipeline(&env).await;
    let id = out.summary.run_id.clone();
    let mut all = Collect::default();
    let args = WatchArgs {
        run_id: "latest".into(),
        ..Default::default()
    };
    let watched = commands::watch::watch(&env.clients, &args, &mut all, &Interrupt::Never)
        .await
        .unwrap();
    assert_eq!(watched.summary.run_id, id);
    assert_eq!(watched.exit_code(), 0);
    let mut tail = Collect::default();
    let args = WatchArgs {
        run_id: id[..12].to_string(),
        after: 3,
        ..Default::default()
    };
    commands::watch::watch(&env.clients, &args, &mut tail, &Interrupt::Never)
        .await
        .unwrap();
    assert_eq!(tail.0, all.0[3..].to_vec());
    let json = retake_cli::follow::JsonLines::event_json(&tail.0[0]);
    assert_eq!(json["sequence"], 4);
    assert_eq!(json["run_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_newest_first_with_filters() {
    let env = embedded().await;
    let first = run_pipeline(&env).await;
    let wf = write(env.dir.path(), "failing.yaml", FAILING);
    let failed = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    let list = commands::runs::list(&env.clients, &RunsArgs::default())
        .await
        .unwrap();
    let ids: Vec<&str> = list.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            failed.summary.run_id.as_str(),
            first.summary.run_id.as_str()
        ]
    );
    let text = list.text(Style::PLAIN);
    assert!(text.starts_with("RUN ID"), "{text}");
    assert!(
        text.contains("report-pipeline") && text.contains("failing"),
        "{text}"
    );

    let only_failed = RunsArgs {
        status: Some(StatusFilter::Failed),
        ..Default::default()
    };
    let list = commands::runs::list(&env.clients, &only_failed)
        .await
        .unwrap();
    assert_eq!(list.runs.len(), 1);
    assert_eq!(list.runs[0].workflow_name, "failing");

    let by_name = RunsArgs {
        workflow: Some("report-pipeline".into()),
        ..Default::default()
    };
    assert_eq!(
        commands::runs::list(&env.clients, &by_name)
            .await
            .unwrap()
            .runs
            .len(),
        1
    );

    let limited = RunsArgs {
        limit: 1,
        ..Default::default()
    };
    let list = commands::runs::list(&env.clients, &limited).await.unwrap();
    assert_eq!(list.runs.len(), 1);
    let json = list.json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["run_id"], failed.summary.run_id.as_str());

    let oldest_first = RunsArgs {
        oldest_first: true,
        limit: 1,
        ..Default::default()
    };
    let list = commands::runs::list(&env.clients, &oldest_first)
        .await
        .unwrap();
    assert_eq!(list.runs[0].run_id, first.summary.run_id);

    let filtered = RunsArgs {
        filter: Some("status = FAILED AND workflow = failing".into()),
        ..Default::default()
    };
    let list = commands::runs::list(&env.clients, &filtered).await.unwrap();
    assert_eq!(list.runs.len(), 1);
    assert_eq!(list.runs[0].run_id, failed.summary.run_id);
    let err = commands::runs::list(
        &env.clients,
        &RunsArgs {
            filter: Some("colour = blue".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 2, "{}", err.message);
    assert!(
        err.message.contains("unknown field 'colour'"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_every_problem_with_lines() {
    let env = embedded().await;
    let bad = write(
        env.dir.path(),
        "bad.yaml",
        "name: bad\nnodes:\n  a:\n    agent: local://echo\n    outputs: [result]\n    colour: blue\n  b:\n    agent: foo://x\n    outputs: []\n",
    );
    let report = commands::validate::validate(
        &env.clients,
        &ValidateArgs {
            file: bad.clone(),
            vars: vec![],
        },
    )
    .await
    .unwrap();
    assert!(!report.valid);
    assert_eq!(report.exit_code(), 2);
    assert!(report.errors.len() >= 2, "{:?}", report.errors);
    let text = report.text(Style::PLAIN);
    let file = bad.display().to_string();
    assert!(
        text.contains(&format!("{file}:7: error: node 'b': ")),
        "{text}"
    );
    assert!(text.contains(": warning: node 'a': "), "{text}");
    assert_eq!(
        report.hint(),
        Some(format!(
            "Error: workflow 'bad' is invalid ({} errors)",
            report.errors.len()
        ))
    );

    let good = write(env.dir.path(), "pipeline.yaml", PIPELINE);
    let report = commands::validate::validate(
        &env.clients,
        &ValidateArgs {
            file: good.clone(),
            vars: vec![],
        },
    )
    .await
    .unwrap();
    assert!(
        report.valid,
        "missing variables are not errors without --var: {:?}",
        report.errors
    );
    // It names the variables a run will need.
    assert_eq!(
        report.text(Style::PLAIN),
        "Workflow 'report-pipeline' is valid (4 nodes)\n\
         Variables it needs: topic (give them when running: --var topic=VALUE)\n"
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.json()["variables"], serde_json::json!(["topic"]));
    assert_eq!(
        report.json()["missing_variables"],
        serde_json::json!(["topic"])
    );
    let validate_with = |vars: &[&str]| {
        let args = ValidateArgs {
            file: good.clone(),
            vars: vars.iter().map(|v| v.to_string()).collect(),
        };
        let clients = env.clients.clone();
        async move { commands::validate::validate(&clients, &args).await.unwrap() }
    };
    // With --var, every variable must be given; the missing ones are named.
    let report = validate_with(&["other=1"]).await;
    assert!(!report.valid, "with --var every variable must be given");
    assert_eq!(report.exit_code(), 2);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.node_id.as_deref() == Some("fetch") && e.message.contains("'topic'")),
        "{:?}",
        report.errors
    );
    assert_eq!(
        report.warnings[0].message,
        "variable 'other' is given but the workflow does not use ${user.other}"
    );
    assert!(
        report
            .text(Style::PLAIN)
            .ends_with("Variables it needs: topic (missing: topic)\n"),
        "{}",
        report.text(Style::PLAIN)
    );
    assert_eq!(
        report.hint().unwrap(),
        format!(
            "Error: workflow 'report-pipeline' is invalid ({} error{}); no value for variable 'topic'",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        )
    );
    assert_eq!(
        report.json()["missing_variables"],
        serde_json::json!(["topic"])
    );
    // Given, they are checked and the workflow is valid.
    let report = validate_with(&["topic=x"]).await;
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(
        report.text(Style::PLAIN),
        "Workflow 'report-pipeline' is valid (4 nodes)\nVariables it needs: topic (all given)\n"
    );
    assert_eq!(report.json()["missing_variables"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_list_show_and_lineage() {
    let env = embedded().await;
    let out = run_pipeline(&env).await;
    let list = commands::artifacts::list(
        &env.clients,
        &ArtifactsListArgs {
            run_id: out.summary.run_id.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(list.artifacts.len(), 4);
    let published = list
        .artifacts
        .iter()
        .find(|a| a.node_id == "publish")
        .unwrap()
        .clone();
    let summarize = list
        .artifacts
        .iter()
        .find(|a| a.node_id == "summarize")
        .unwrap()
        .clone();
    assert!(list.text(Style::PLAIN).contains(&published.id));

    let shown = commands::artifacts::show(
        &env.clients,
        &ArtifactShowArgs {
            artifact_id: summarize.id.clone(),
            raw: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(shown.content, b"summary v1");
    assert!(shown.text(Style::PLAIN).ends_with("\nsummary v1\n"));
    assert_eq!(shown.json()["content"], "summary v1");

    let lineage = commands::artifacts::lineage(
        &env.clients,
        &ArtifactLineageArgs {
            artifact_id: published.id.clone(),
            depth: 0,
        },
    )
    .await
    .unwrap();
    let text = lineage.text(Style::PLAIN);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{}  publish.result", published.id)),
        "{text}"
    );
    assert!(
        text.contains("summarize.result") && text.contains("fetch.result"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_shows_timeline_graph_and_node() {
    let env = embedded().await;
    let out = run_pipeline(&env).await;
    let id = out.summary.run_id.clone();
    let timeline = commands::trace::trace(
        &env.clients,
        &TraceArgs {
            view: None,
            run_id: Some(id.clone()),
        },
    )
    .await
    .unwrap();
    let text = timeline.text(Style::PLAIN);
    for node in ["fetch", "transform", "summarize", "publish"] {
        assert!(text.contains(node), "{text}");
    }
    let graph = commands::trace::trace(
        &env.clients,
        &TraceArgs {
            view: Some(TraceView::Graph { run_id: id.clone() }),
            run_id: None,
        },
    )
    .await
    .unwrap();
    let text = graph.text(Style::PLAIN);
    assert!(text.contains("transform  completed  ← fetch"), "{text}");
    let json = graph.json();
    assert_eq!(json["edges"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_are_not_found() {
    let env = embedded().await;
    let err = commands::watch::watch(
        &env.clients,
        &WatchArgs {
            run_id: "run_nonexistent".into(),
            ..Default::default()
        },
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Run 'run_nonexistent' not found");
    assert_eq!(err.code, 1);
    let err = commands::cancel::cancel(
        &env.clients,
        &CancelArgs {
            run_id: "run_nonexistent".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Run 'run_nonexistent' not found");
}

// ---- replay ----

async fn replay(
    env: &Embedded,
    args: ReplayArgs,
) -> Result<commands::RunOutcome, retake_cli::error::CliError> {
    commands::replay::replay(
        &env.clients,
        &args,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_a_step_reuses_upstream() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let mut events = Collect::default();
    let args = ReplayArgs {
        run_id: source.run_id.clone(),
        change: ChangeArgs {
            from: Some("summarize".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = commands::replay::replay(&env.clients, &args, &mut events, &Interrupt::Never)
        .await
        .unwrap();
    let s = &out.summary;
    assert_eq!(s.forked_from.as_deref(), Some(source.run_id.as_str()));
    assert_eq!(s.forked_at_step.as_deref(), Some("summarize"));
    assert_eq!(
        (
            s.status.as_str(),
            s.completed_nodes,
            s.total_nodes,
            s.reused_nodes
        ),
        ("completed", 4, 4, 2)
    );
    assert_eq!(out.exit_code(), 0);
    assert_eq!(
        out.text(Style::PLAIN),
        format!(
            "Replay Run ID: {}\nForked from: {} at step 'summarize'\nWorkflow: report-pipeline\nStatus: completed\nNodes: 4/4 completed\n",
            s.run_id, source.run_id
        )
    );
    let reused: Vec<&Event> = events
        .0
        .iter()
        .filter(|e| e.kind() == EventKind::NodeReused)
        .collect();
    assert_eq!(reused.len(), 1, "one event for every reused node");
    assert_eq!(reused[0].node_ids, ["fetch", "transform"]);
    assert_eq!(node_kinds(&events.0, "fetch"), []);
    assert!(node_kinds(&events.0, "summarize").contains(&EventKind::NodeCompleted));
    let json = out.json();
    assert_eq!(json["forked_from"], source.run_id.as_str());
    assert_eq!(json["forked_at_step"], "summarize");

    // The replay shows up as a fork of its source.
    let forks = commands::runs::list(
        &env.clients,
        &RunsArgs {
            forked_from: Some(source.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(forks.runs.len(), 1);
    assert_eq!(forks.runs[0].run_id, s.run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_a_swap_and_an_override_then_diff() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    // Without --from, the swapped node is the root.
    let swapped = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                agents: vec!["summarize=local://echo".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .summary;
    assert_eq!(swapped.status, "completed");
    assert_eq!(swapped.forked_at_step.as_deref(), Some("summarize"));

    let overridden = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                overrides: vec!["checkpoint.transform=edited facts".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .summary;
    assert_eq!(overridden.status, "completed");

    let diff = commands::diff::diff(
        &env.clients,
        &DiffArgs {
            run_a: source.run_id.clone(),
            run_b: Some(swapped.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = diff.text(Style::PLAIN);
    assert!(text.contains("  local://mock → local://echo  "), "{text}");
    assert!(
        text.ends_with(
            "2 changed, 2 unchanged, 0 only in A, 0 only in B\n\
             First divergence: summarize; 1 downstream of it: publish\n"
        ),
        "{text}"
    );
    let json = diff.json();
    assert_eq!(json["summary"]["changed"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_errors_read_like_the_reference() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;

    let err = replay(
        &env,
        ReplayArgs {
            run_id: "run_nonexistent".into(),
            change: ChangeArgs {
                from: Some("summarize".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Run 'run_nonexistent' not found");
    assert_eq!(err.code, 1);

    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                from: Some("summarize".into()),
                agents: vec!["summarize llm://openai/gpt-4o".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Invalid agent swap format: summarize llm://openai/gpt-4o (expected node=agent)"
    );
    assert_eq!(err.code, 2);

    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                from: Some("x".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Step 'x' not found in workflow");

    // Drift: the server names the node, the CLI the flags that get past it.
    let drifted = write(
        env.dir.path(),
        "drifted.yaml",
        &PIPELINE.replace("Extract the key facts.", "Extract other facts."),
    );
    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            workflow: Some(drifted),
            change: ChangeArgs {
                from: Some("summarize".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.message.ends_with(
            "\nhint: replay from the changed nodes (--from transform), or reuse their old records with --allow-drift"
        ),
        "{}",
        err.message
    );

    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                overrides: vec!["transform".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Invalid override format: transform (expected node=value, node.output=value or node=@file)"
    );
    assert_eq!(err.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_replay_is_reported_as_failed() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let failing = PIPELINE.replace(
        "agent: local://mock\n    inputs: {facts:",
        "agent: local://fail\n    inputs: {facts:",
    );
    assert_ne!(failing, PIPELINE);
    let wf = write(env.dir.path(), "failing-pipeline.yaml", &failing);
    let out = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            workflow: Some(wf),
            change: ChangeArgs {
                from: Some("summarize".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "failed");
    assert_eq!(out.exit_code(), 1);
    let text = out.text(Style::PLAIN);
    assert!(
        text.contains("Status: failed\nNodes: 2/4 completed\nFailed: 1\n"),
        "{text}"
    );
    assert_eq!(
        out.hint(),
        Some(format!(
            "Tip: run 'retake debug {} --errors'",
            out.summary.run_id
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_accepts_prepared_requests() {
    let env = embedded().await;
    let run = commands::run::start(
        &env.clients,
        StartRunRequest {
            workflow: PIPELINE.into(),
            variables: HashMap::from([("topic".to_string(), "t".to_string())]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let out = commands::follow_to_end(
        &env.clients,
        &run,
        0,
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_flags_that_contradict_each_other() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let refused = |agents: &[&str], overrides: &[&str]| ReplayArgs {
        run_id: source.run_id.clone(),
        change: ChangeArgs {
            agents: agents.iter().map(|s| s.to_string()).collect(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let cases: [(&[&str], &[&str], &str); 5] = [
        (
            &["transform=local://echo"],
            &["transform=edited"],
            "node 'transform' is given both --agent ('transform=local://echo') and --override ('transform=edited'): \
             an overridden node does not run, so its agent would not be used; give one of them",
        ),
        (
            &["summarize=local://echo", "summarize=local://mock"],
            &[],
            "--agent is given twice for node 'summarize' ('summarize=local://echo' and 'summarize=local://mock'); give it once",
        ),
        (
            &[],
            &["fetch=a", "fetch=b"],
            "--override is given twice for node 'fetch' ('fetch=a' and 'fetch=b'); give each output one value",
        ),
        (
            &[],
            &["fetch.result=a", "fetch=b"],
            "--override is given twice for node 'fetch' ('fetch.result=a' and 'fetch=b'); give each output one value",
        ),
        (
            &[],
            &["fetch.result=a", "checkpoint.fetch.result=b"],
            "--override is given twice for output 'fetch.result' ('fetch.result=a' and 'checkpoint.fetch.result=b'); \
             give each output one value",
        ),
    ];
    for (agents, overrides, expected) in cases {
        let err = replay(&env, refused(agents, overrides)).await.unwrap_err();
        assert_eq!(err.message, expected, "{agents:?} {overrides:?}");
        assert_eq!(err.code, 2);
    }
    // Nothing was replayed.
    let forks = commands::runs::list(
        &env.clients,
        &RunsArgs {
            forked_from: Some(source.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(forks.runs.is_empty());
}

/// A node named `checkpoint` next to one named after its output.
const CHECKPOINTS: &str = r#"name: checkpoints
nodes:
  checkpoint:
    agent: local://mock
    config: {response: "saved"}
    outputs: [notes, draft]
  notes:
    agent: local://echo
    inputs: {n: "${checkpoint.notes}"}
    outputs: [result]
    depends_on: [checkpoint]
  final:
    agent: local://echo
    inputs: {d: "${checkpoint.draft}", n: "${notes.result}"}
    outputs: [result]
    depends_on: [checkpoint, notes]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_overrides_take_the_reading_that_exists() {
    let env = embedded().await;
    let wf = write(env.dir.path(), "checkpoints.yaml", CHECKPOINTS);
    let source = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut Collect::default(),
        &Interrupt::Never,
    )
    .await
    .unwrap()
    .summary;
    assert_eq!(source.status, "completed");

    // Output 'notes' of node 'checkpoint', or node 'notes': both exist.
    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                overrides: vec!["checkpoint.notes=edited".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 2);
    assert_eq!(
        err.message,
        "--override checkpoint.notes=… is ambiguous: it can mean output 'notes' of node 'checkpoint' \
         or node 'notes'; write checkpoint.checkpoint.notes=VALUE for the first or notes=VALUE for the second"
    );

    // There is no node 'draft': output 'draft' of node 'checkpoint' it is.
    let out = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                overrides: vec!["checkpoint.draft=edited draft".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "completed");
    let node = commands::trace::node(&env.clients, &out.summary.run_id, "final")
        .await
        .unwrap();
    let content = node.report.outputs[0].text.clone().unwrap();
    assert!(content.contains("edited draft"), "{content}");

    // The spelled-out forms of both readings are accepted.
    for spelled in ["checkpoint.checkpoint.notes=x", "notes=x"] {
        let out = replay(
            &env,
            ReplayArgs {
                run_id: source.run_id.clone(),
                change: ChangeArgs {
                    overrides: vec![spelled.into()],
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(out.summary.status, "completed", "{spelled}");
    }

    // Settled to node 'checkpoint', it conflicts with a swap of that node.
    let err = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            change: ChangeArgs {
                agents: vec!["checkpoint=local://echo".into()],
                overrides: vec!["checkpoint.draft=x".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 2);
    assert!(
        err.message
            .starts_with("node 'checkpoint' is given both --agent"),
        "{}",
        err.message
    );

    // --workflow: the readings are checked against the workflow replayed,
    // where node 'notes' is now called 'summary'.
    let renamed = write(
        env.dir.path(),
        "renamed.yaml",
        &CHECKPOINTS
            .replace("  notes:\n", "  summary:\n")
            .replace("${notes.result}", "${summary.result}")
            .replace("[checkpoint, notes]", "[checkpoint, summary]"),
    );
    let out = replay(
        &env,
        ReplayArgs {
            run_id: source.run_id.clone(),
            workflow: Some(renamed),
            change: ChangeArgs {
                overrides: vec!["checkpoint.notes=edited notes".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "completed");
    let node = commands::trace::node(&env.clients, &out.summary.run_id, "summary")
        .await
        .unwrap();
    let content = node.report.outputs[0].text.clone().unwrap();
    assert!(content.contains("edited notes"), "{content}");
}

async fn replay_of(env: &Embedded, source: &str) -> commands::RunSummary {
    replay(
        env,
        ReplayArgs {
            run_id: source.to_string(),
            change: ChangeArgs {
                agents: vec!["summarize=local://echo".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_prints_columns_and_names_the_runs_a_and_b() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let swapped = replay_of(&env, &source.run_id).await;
    let diff = commands::diff::diff(
        &env.clients,
        &DiffArgs {
            run_a: source.run_id.clone(),
            run_b: Some(swapped.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = diff.text(Style::PLAIN);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("Run A:  {}  report-pipeline  completed", source.run_id),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!(
            "Run B:  {}  report-pipeline  completed  replay of A from step 'summarize'",
            swapped.run_id
        ),
        "{text}"
    );
    // One table: every column starts where its header does.
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with("NODE"))
        .expect("a header row");
    let columns: Vec<usize> = ["NODE", "CHANGE", "STATUS", "AGENT", "LATENCY"]
        .iter()
        .map(|h| {
            lines[header][..lines[header].find(h).unwrap()]
                .chars()
                .count()
        })
        .collect();
    let rows = &lines[header + 1..header + 5];
    for row in rows {
        let chars: Vec<char> = row.chars().collect();
        for &c in &columns {
            assert!(
                chars[c - 1] == ' ' && chars[c] != ' ',
                "column at {c} in {row:?}\n{text}"
            );
        }
    }
    assert!(rows[0].starts_with("=  fetch "), "{text}");
    assert!(
        rows[2].starts_with("~  summarize  changed, first divergence "),
        "{text}"
    );
    assert!(rows[2].contains("local://mock → local://echo"), "{text}");
    assert!(!text.contains("latency"), "latency is a column: {text}");
    let summary = lines[lines.len() - 2];
    assert_eq!(summary, "2 changed, 2 unchanged, 0 only in A, 0 only in B");
    assert_eq!(
        *lines.last().unwrap(),
        "First divergence: summarize; 1 downstream of it: publish"
    );
    assert_eq!(
        text.matches(&source.run_id).count(),
        1,
        "each run id is printed once: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_finds_the_first_divergence_and_what_lies_downstream() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let swapped = replay_of(&env, &source.run_id).await;
    let args = DiffArgs {
        run_a: source.run_id.clone(),
        run_b: Some(swapped.run_id.clone()),
        first_divergence: true,
    };
    let diff = commands::diff::diff(&env.clients, &args).await.unwrap();
    let text = diff.text(Style::PLAIN);
    assert!(
        text.starts_with("First divergence: summarize; 1 downstream of it: publish\n"),
        "{text}"
    );
    assert!(text.contains("  output 'result' changed\n"), "{text}");
    assert!(
        !text.contains("fetch"),
        "only the divergence is shown: {text}"
    );
    let json = diff.json();
    assert_eq!(json["first_divergence"], "summarize");
    assert_eq!(json["after_divergence"], serde_json::json!(["publish"]));
    assert_eq!(json["node"]["node_id"], "summarize");
    assert!(json.get("nodes").is_none(), "{json}");

    // Nothing parts a run from itself.
    let same = DiffArgs {
        run_b: Some(source.run_id.clone()),
        ..args
    };
    let diff = commands::diff::diff(&env.clients, &same).await.unwrap();
    assert_eq!(
        diff.text(Style::PLAIN),
        "No divergence: every node's outputs are the same in A and B\n"
    );
    assert!(diff.json()["first_divergence"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_says_when_nothing_differs() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let diff = commands::diff::diff(
        &env.clients,
        &DiffArgs {
            run_a: source.run_id.clone(),
            run_b: Some(source.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(diff.same_run() && diff.identical());
    let text = diff.text(Style::PLAIN);
    assert!(text.contains("\nA and B are the same run.\n"), "{text}");
    assert!(
        text.ends_with("\nNo differences: all 4 nodes are the same in A and B\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_with_one_run_compares_a_replay_with_its_source() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let swapped = replay_of(&env, &source.run_id).await;
    let diff = commands::diff::diff(
        &env.clients,
        &DiffArgs {
            run_a: "latest".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let json = diff.json();
    assert_eq!(json["run_a"]["run_id"], source.run_id.as_str());
    assert_eq!(json["run_b"]["run_id"], swapped.run_id.as_str());
    assert_eq!(json["summary"]["changed"], 2);

    let err = commands::diff::diff(
        &env.clients,
        &DiffArgs {
            run_a: source.run_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 2);
    assert_eq!(
        err.message,
        format!(
            "run {} is not a replay, so there is no run it was forked from to compare it with; \
             give two runs: retake diff RUN_A RUN_B",
            source.run_id
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_is_reported_once_and_its_nodes_on_one_line() {
    let env = embedded().await;
    let wf = write(
        env.dir.path(),
        "fan.yaml",
        "name: fan\nnodes:\n  nap:\n    agent: local://sleep\n    config: {ms: 600000}\n    outputs: [result]\n  \
         b1:\n    agent: local://echo\n    outputs: [result]\n    depends_on: [nap]\n  \
         b2:\n    agent: local://echo\n    outputs: [result]\n    depends_on: [nap]\n  \
         b3:\n    agent: local://echo\n    outputs: [result]\n    depends_on: [b1, b2]\n",
    );
    let notify = Arc::new(tokio::sync::Notify::new());
    let mut sink = InterruptOnStart {
        notify: notify.clone(),
        events: Vec::new(),
    };
    let out = commands::run::run(
        &env.clients,
        &run_args(wf, &[]),
        &mut sink,
        &Interrupt::Notify(notify),
    )
    .await
    .unwrap();
    assert_eq!(out.summary.status, "cancelled");
    let debug = commands::debug::debug(
        &env.clients,
        &DebugArgs {
            run_id: out.summary.run_id.clone(),
            errors: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = debug.text(Style::PLAIN);
    assert!(
        text.contains("\nFailure: the run was cancelled\n"),
        "{text}"
    );
    assert!(!text.contains("(cancelled)"), "{text}");
    assert!(
        text.ends_with("\n\n⊘ 4 nodes cancelled: nap, b1, b2, b3\n"),
        "{text}"
    );
    assert_eq!(text.matches("cancelled").count(), 3, "{text}");
    // JSON still has every node in full.
    assert_eq!(debug.json()["nodes"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_delete_refuses_a_used_run_with_a_hint_then_cascades() {
    let env = embedded().await;
    let source = run_pipeline(&env).await.summary;
    let replay = replay_of(&env, &source.run_id).await;
    let delete = |cascade: bool| DeleteArgs {
        run_ids: vec![source.run_id.clone()],
        cascade,
    };
    let err = commands::runs::delete(&env.clients, &delete(false))
        .await
        .unwrap_err();
    assert_eq!(err.code, 1);
    assert!(err.message.contains(&replay.run_id), "{}", err.message);
    assert!(
        err.message
            .ends_with("\nhint: delete them too with --cascade"),
        "{}",
        err.message
    );
    let deleted = commands::runs::delete(&env.clients, &delete(true))
        .await
        .unwrap();
    assert_eq!(deleted.runs.len(), 2);
    let text = deleted.text(Style::PLAIN);
    assert!(
        text.contains(&format!("Deleted run {}", source.run_id))
            && text.contains(&format!("Deleted run {}", replay.run_id)),
        "{text}"
    );
    assert_eq!(
        deleted.json()["deleted_run_ids"].as_array().unwrap().len(),
        2
    );
    let list = commands::runs::list(&env.clients, &RunsArgs::default())
        .await
        .unwrap();
    assert!(list.runs.is_empty());
}
