//! Answering (or cancelling) a run that waits in the local database, from
//! a new `retake` process without a server: the engine in that process
//! resumes the run and follows it as `retake run` does. A retake-server
//! holding the database keeps such commands out.

mod common;

use common::write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A draft, an approval, then publish (approved) or revise (rejected).
const APPROVAL: &str = r#"name: approval
nodes:
  draft:
    agent: local://mock
    config: {response: "Quarterly summary"}
    outputs: [text]
  review:
    agent: human://approve
    system_prompt: "Publish this summary?"
    inputs: {summary: "${draft.text}"}
    outputs: [decision, feedback]
    depends_on: [draft]
  publish:
    agent: local://echo
    when: "${review.decision} == approved"
    inputs: {text: "${draft.text}"}
    outputs: [result]
    depends_on: [review]
  revise:
    agent: local://echo
    when: "${review.decision} == rejected"
    inputs: {why: "${review.feedback}"}
    outputs: [result]
    depends_on: [review]
"#;

/// Two approvals in a row.
const TWO_GATES: &str = r#"name: two-gates
nodes:
  first:
    agent: human://approve
    system_prompt: "First?"
    outputs: [decision, feedback]
  second:
    agent: human://approve
    system_prompt: "Second?"
    outputs: [decision, feedback]
    depends_on: [first]
  done:
    agent: local://echo
    inputs: {a: "${first.decision}", b: "${second.decision}"}
    outputs: [result]
    depends_on: [second]
"#;

fn retake(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retake"))
        .current_dir(dir)
        .env_remove("RETAKE_SERVER")
        .env_remove("RETAKE_TOKEN")
        .env_remove("RETAKE_TOKEN_FILE")
        .env_remove("RETAKE_DB")
        .env("NO_COLOR", "1")
        .args(args)
        // No terminal: a run that waits stops there.
        .stdin(Stdio::null())
        .output()
        .expect("retake runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// Starts `file` in `dir`'s default database; it stops waiting. Returns the run id.
fn start_waiting(dir: &Path, file: &str) -> String {
    let out = retake(dir, &["run", file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "waiting");
    summary["run_id"].as_str().unwrap().to_string()
}

#[test]
fn approve_latest_resumes_the_run_here_and_follows_it_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "approval.yaml", APPROVAL);
    let id = start_waiting(dir.path(), "approval.yaml");

    let out = retake(dir.path(), &["approve", "latest", "--feedback", "ship it"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("Node 'review' of run {id} approved\n")),
        "{text}"
    );
    // Only what the answer set off is shown, then the summary `retake run` prints.
    assert!(!text.contains("draft completed"), "{text}");
    assert!(text.contains("  ▶ review resumed"), "{text}");
    assert!(text.contains("  ✓ publish completed ("), "{text}");
    assert!(text.contains("  - revise skipped"), "{text}");
    assert!(
        text.contains(&format!(
            "\n\nRun ID: {id}\nWorkflow: approval\nStatus: completed\nNodes: 3/4 completed\nSkipped: 1\n"
        )),
        "{text}"
    );
    assert_eq!(stderr(&out), "");

    // Answered once: the run has finished.
    let out = retake(dir.path(), &["approve", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has finished"), "{}", stderr(&out));
}

#[test]
fn reject_latest_ends_as_the_workflow_says_with_the_summary_in_json() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "approval.yaml", APPROVAL);
    let id = start_waiting(dir.path(), "approval.yaml");

    let out = retake(
        dir.path(),
        &["reject", "latest", "--feedback", "too long", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answered = json(&out);
    assert_eq!(answered["run_id"], id.as_str());
    assert_eq!(answered["node_id"], "review");
    assert_eq!(answered["kind"], "approval");
    assert_eq!(answered["answer"], "rejected");
    assert_eq!(answered["run_status"], "completed");
    assert_eq!(answered["run"]["run_id"], id.as_str());
    assert_eq!(answered["run"]["status"], "completed");
    assert_eq!(answered["run"]["skipped_nodes"], 1);

    let out = retake(dir.path(), &["debug", &id, "--json"]);
    let nodes = json(&out)["nodes"].clone();
    let status = |node: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == node)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("revise"), "completed");
    assert_eq!(status("publish"), "skipped");
}

#[test]
fn a_run_that_waits_again_stops_there_and_the_next_answer_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gates.yaml", TWO_GATES);
    let id = start_waiting(dir.path(), "gates.yaml");

    let out = retake(dir.path(), &["approve", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  ⏸ second waiting: Second?\n"), "{text}");
    assert!(text.contains("\nStatus: waiting\n"), "{text}");
    assert_eq!(
        stderr(&out),
        format!(
            "Run {id} waits for a human at node 'second', and without a terminal nobody can answer here.\n\
             It stays waiting in the database; answer with 'retake approve {id}' or \
             'retake reject {id} --feedback TEXT'\n"
        )
    );

    let out = retake(dir.path(), &["approve", &id, "--node", "second", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["run"]["status"], "completed");
}

#[test]
fn input_answers_a_waiting_run_from_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ask.yaml",
        "name: ask\nnodes:\n  question:\n    agent: human://input\n    system_prompt: Which topic?\n    outputs: [value]\n  \
         echo:\n    agent: local://echo\n    inputs: {topic: \"${question.value}\"}\n    outputs: [result]\n    depends_on: [question]\n",
    );
    let id = start_waiting(dir.path(), "ask.yaml");
    let out = retake(dir.path(), &["input", "latest", "--value", "durable"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("Node 'question' of run {id} answered\n")),
        "{text}"
    );
    assert!(text.contains("\nStatus: completed\n"), "{text}");
}

#[test]
fn cancel_latest_cancels_a_waiting_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "approval.yaml", APPROVAL);
    let id = start_waiting(dir.path(), "approval.yaml");

    let out = retake(dir.path(), &["cancel", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Run {id} cancelled\nNodes: 1/4 completed\n")
    );

    let out = retake(dir.path(), &["runs", "--json"]);
    let runs = json(&out);
    assert_eq!(runs[0]["status"], "cancelled");
    assert_eq!(runs[0]["failure"]["origin"], "cancelled");
    let out = retake(dir.path(), &["cancel", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has already finished"),
        "{}",
        stderr(&out)
    );
    let out = retake(dir.path(), &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_server_holding_the_database_keeps_embedded_engines_out() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "approval.yaml", APPROVAL);
    let id = start_waiting(dir.path(), "approval.yaml");

    // A server on the same database; it resumes the waiting run.
    let db = dir.path().join(".retake/retake.db");
    let server = runtime.block_on(common::served_with({
        let db = db.clone();
        move |settings| settings.db_path = db
    }));
    runtime.block_on(async {
        let clients = server.clients(None).await;
        retake_cli::commands::get_run(&clients, &id).await.unwrap();
    });

    let refused = "Error: the database .retake/retake.db is in use by another retake process \
                   (a retake-server?): pass --server URL to reach it\n";
    for args in [
        &["approve", "latest"][..],
        &["cancel", "latest"],
        &["run", "approval.yaml"],
        &["experiment", "run", "--runs", "latest"],
    ] {
        let out = retake(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert_eq!(stderr(&out), refused, "{args:?}");
    }
    // Reading needs no lock.
    let out = retake(dir.path(), &["runs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)[0]["status"], "waiting");

    // A second server on the database refuses to start.
    let second = runtime.block_on(async {
        let mut settings = retake_server::Settings::new(&db);
        settings.max_parallel_nodes = 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        retake_server::serve(settings, listener, std::future::pending())
            .await
            .unwrap_err()
    });
    let message = format!("{second:#}");
    assert!(
        message.contains(&format!(
            "the database {} is in use by another retake process",
            db.display()
        )),
        "{message}"
    );

    // Through the server, the answer goes where the run is.
    let out = retake(dir.path(), &["--server", &server.url, "approve", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        format!("Node 'review' of run {id} approved")
    );
    drop(server);
}
