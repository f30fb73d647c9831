//! `--log-format json`: every line a log shipper reads is one JSON object,
//! and a line about a run names it (the run's span carries its id).

use retake_test_support::db_dir::DbDir;
use retake_test_support::process::ServerCommand;
use serde_json::Value;

#[tokio::test]
async fn json_lines_name_the_run_they_are_about() {
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db())
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info,retake_server=debug,sqlx=warn")
        .log(dir.log())
        .spawn();
    let mut client = server.client().await;
    let run = client
        .start_run("name: logged\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n")
        .await;
    client.finish(&run.id).await;
    server.kill9();

    let log = std::fs::read_to_string(dir.log()).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "run finished")
        .collect();
    assert_eq!(finished.len(), 1, "{log}");
    let spans = finished[0]["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "run" && s["run_id"] == run.id.as_str()),
        "{}",
        finished[0]
    );
    assert_eq!(finished[0]["fields"]["status"], "completed");
}

#[test]
fn an_unknown_log_format_is_refused() {
    let dir = DbDir::new();
    let out = ServerCommand::new(dir.db())
        .args(["--log-format", "xml"])
        .command()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--log-format") && err.contains("json"),
        "{err}"
    );
}
