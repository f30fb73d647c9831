//! `retake experiment` in-process against the real engine: the flags,
//! the comparison table a person reads, the JSON, and the exit code.

mod common;

use common::*;
use retake_cli::cli::*;
use retake_cli::commands;
use retake_cli::follow::{Collect, Interrupt};
use retake_cli::render::{Output, Style};

async fn record(env: &Embedded, n: usize) {
    record_with(&env.clients, env.dir.path(), n).await;
}

async fn record_with(clients: &retake_cli::connect::Clients, dir: &std::path::Path, n: usize) {
    let wf = write(dir, "pipeline.yaml", PIPELINE);
    for i in 0..n {
        commands::run::run(
            clients,
            &RunArgs {
                file: wf.clone(),
                vars: vec![format!("topic=t{i}")],
                ..Default::default()
            },
            &mut Collect::default(),
            &Interrupt::Never,
        )
        .await
        .expect("run succeeds");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_run_replays_a_workflows_runs_and_shows_the_comparison() {
    let env = embedded().await;
    record(&env, 3).await;
    let args = ExperimentRunArgs {
        workflow_name: Some("report-pipeline".into()),
        last: Some(2),
        change: ChangeArgs {
            agents: vec!["summarize=local://echo".into()],
            ..Default::default()
        },
        name: Some("echo summaries".into()),
        ..Default::default()
    };
    let shown = commands::experiment::run(&env.clients, &args, false, &Interrupt::Never)
        .await
        .unwrap();
    assert_eq!(shown.exit_code(), 0);
    let text = shown.text(Style::PLAIN);
    assert!(text.contains("\"echo summaries\"  completed\n"), "{text}");
    assert!(text.contains("Runs: 2 — 2 completed, 0 failed"), "{text}");
    assert!(
        text.contains("Change: summarize → local://echo\n"),
        "{text}"
    );
    let row = |node: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("no row for {node}: {text}"))
            .split_whitespace()
            .skip(1)
            .map(|c| c.parse::<i32>().unwrap())
            .collect::<Vec<_>>()
    };
    // changed, unchanged, failed, newly failed, newly ok, reused
    assert_eq!(row("fetch"), [0, 2, 0, 0, 0, 2]);
    assert_eq!(row("transform"), [0, 2, 0, 0, 0, 2]);
    assert_eq!(row("summarize"), [2, 0, 0, 0, 0, 0]);
    assert_eq!(row("publish"), [2, 0, 0, 0, 0, 0]);
    assert!(text.contains("Reused: 4 nodes"), "{text}");
    // Totals before → after, with the difference.
    assert!(
        text.contains("\nCost: $0.0000 → $0.0000 (+$0.0000)\n"),
        "{text}"
    );
    assert!(text.contains("\nTokens: 0 → 0 (0)\n"), "{text}");
    assert!(
        !text.contains("SCORE"),
        "no score node, no score column: {text}"
    );

    let json = shown.json();
    assert_eq!(json["status"], "completed");
    assert_eq!(json["progress"]["completed"], 2);
    assert_eq!(json["comparison"]["pairs"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["comparison"]["pairs"][0]["first_divergence"],
        "summarize"
    );
    let id = json["experiment_id"].as_str().unwrap().to_string();

    let listed = commands::experiment::list(&env.clients).await.unwrap();
    assert!(listed.text(Style::PLAIN).contains(&id));
    let again = commands::experiment::show(&env.clients, &id).await.unwrap();
    assert_eq!(again.json(), json, "show gives what run printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_replay_exits_1_and_bad_flags_are_refused_before_anything_starts() {
    let env = embedded().await;
    record(&env, 1).await;
    let failing = ExperimentRunArgs {
        runs: vec!["latest".into()],
        change: ChangeArgs {
            agents: vec!["summarize=local://fail".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let shown = commands::experiment::run(&env.clients, &failing, false, &Interrupt::Never)
        .await
        .unwrap();
    assert_eq!(shown.exit_code(), 1);
    assert_eq!(shown.json()["status"], "failed");
    assert!(
        shown.text(Style::PLAIN).contains("completed → failed"),
        "{}",
        shown.text(Style::PLAIN)
    );

    let twice = ExperimentRunArgs {
        runs: vec!["latest".into()],
        change: ChangeArgs {
            agents: vec![
                "summarize=local://echo".into(),
                "summarize=local://mock".into(),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let err = commands::experiment::run(&env.clients, &twice, false, &Interrupt::Never)
        .await
        .unwrap_err();
    assert_eq!(err.code, 2);
    assert!(
        err.message.contains("--agent is given twice"),
        "{}",
        err.message
    );
    let listed = commands::experiment::list(&env.clients).await.unwrap();
    assert_eq!(listed.experiments.len(), 1, "the refused one never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_server_an_interrupt_stops_following_and_the_experiment_goes_on() {
    let server = served(None).await;
    let clients = server.clients(None).await;
    let dir = tempfile::tempdir().unwrap();
    record_with(&clients, dir.path(), 2).await;
    // Ctrl-C already pressed: following stops at the first chance.
    let interrupt = std::sync::Arc::new(tokio::sync::Notify::new());
    interrupt.notify_one();
    let args = ExperimentRunArgs {
        workflow_name: Some("report-pipeline".into()),
        change: ChangeArgs {
            agents: vec!["summarize=local://sleep".into()],
            ..Default::default()
        },
        concurrency: Some(1),
        ..Default::default()
    };
    let shown = commands::experiment::run(&clients, &args, false, &Interrupt::Notify(interrupt))
        .await
        .unwrap();
    assert_eq!(shown.exit_code(), 130);
    let id = shown.experiment.id.clone();
    assert_eq!(
        shown.hint().unwrap(),
        format!(
            "Experiment {id} continues on the server; see it with 'retake experiment show {id}'"
        )
    );
    // The server runs it to its end meanwhile.
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let shown = commands::experiment::show(&clients, &id).await.unwrap();
            if shown.json()["status"] != "running" {
                return shown;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the experiment ends on the server");
    assert_eq!(done.json()["status"], "completed");
    assert_eq!(done.json()["progress"]["completed"], 2);
    assert_eq!(done.exit_code(), 0);
}
