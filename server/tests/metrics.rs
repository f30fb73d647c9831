//! `/metrics` scraped from a real server process while 100 runs execute:
//! the exposition parses (OpenMetrics text, every sample of a declared
//! family), names and labels follow Prometheus conventions, counts add up,
//! and with a token the scrape needs it.

use retake_test_support::db_dir::DbDir;
use retake_test_support::process::ServerCommand;
use std::collections::BTreeMap;
use std::time::Duration;

/// One sample: the series (name and labels as written) and its value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let mut families = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(name.starts_with("retake_"), "{line}");
            families.push(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("SERIES VALUE");
        let name = series.split('{').next().unwrap();
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} belongs to no declared family"
        );
        assert!(!series.contains("run_"), "no run id in a label: {series}");
        samples.insert(series.to_string(), value.parse::<f64>().expect(line));
    }
    samples
}

fn sum(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("scrape")
}

#[tokio::test]
async fn metrics_count_runs_nodes_and_commits_while_they_execute() {
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db()).log(dir.log()).spawn();
    let url = server.url();
    let mut client = server.client().await;
    // 100 runs of two nodes, the second slow enough to be scraped in flight.
    let yaml = "name: m\nnodes:\n  a: {agent: local://echo, inputs: {x: \"1\"}, outputs: [o]}\n  b: {agent: local://sleep, config: {ms: 300}, outputs: [o], depends_on: [a]}\n";
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(client.start_run(yaml).await.id);
    }
    let during = scrape(&url, None).await;
    assert_eq!(during.status(), 200);
    assert!(
        during.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let during = parse(&during.text().await.unwrap());
    assert_eq!(during["retake_runs_started_total{kind=\"start\"}"], 100.0);
    assert!(during["retake_runs_in_flight"] > 0.0, "{during:?}");
    assert!(during["retake_database_size_bytes"] > 0.0);

    for id in &ids {
        client.finish(id).await;
    }
    // Watch one run: its events count as streamed.
    let events = client.events(&ids[0], 0).await.len() as f64;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = parse(&scrape(&url, None).await.text().await.unwrap());
    assert_eq!(
        after["retake_runs_finished_total{status=\"completed\"}"],
        100.0
    );
    assert_eq!(
        after["retake_node_executions_total{agent=\"local\",outcome=\"completed\"}"],
        200.0
    );
    assert_eq!(
        after["retake_node_duration_seconds_count{agent=\"local\"}"],
        200.0
    );
    assert!(after["retake_node_duration_seconds_sum{agent=\"local\"}"] >= 100.0 * 0.3);
    assert!(after["retake_commit_duration_seconds_count"] > 0.0);
    assert!(sum(&after, "retake_commit_duration_seconds_bucket") > 0.0);
    assert!(after["retake_events_streamed_total"] >= events);
    assert_eq!(after["retake_runs_in_flight"], 0.0);
    assert_eq!(after["retake_workers_connected"], 0.0);
    assert_eq!(after["retake_worker_tasks_queued"], 0.0);
    // Histogram buckets are cumulative and end at +Inf with the count.
    assert_eq!(
        after["retake_commit_duration_seconds_bucket{le=\"+Inf\"}"],
        after["retake_commit_duration_seconds_count"]
    );
    server.kill9();
}

#[tokio::test]
async fn with_a_token_the_scrape_needs_it() {
    let dir = DbDir::new();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "scrape-me\n").unwrap();
    let mut server = ServerCommand::new(dir.db())
        .arg("--auth-token-file")
        .arg(&token_file)
        .log(dir.log())
        .spawn();
    let url = server.url();
    assert_eq!(scrape(&url, None).await.status(), 401);
    assert_eq!(scrape(&url, Some("wrong")).await.status(), 401);
    let ok = scrape(&url, Some("scrape-me")).await;
    assert_eq!(ok.status(), 200);
    parse(&ok.text().await.unwrap());
    server.kill9();
}
