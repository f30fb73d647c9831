//! OpenTelemetry traces from a real server process into an OTLP receiver
//! the test runs (a tonic server for the OTLP trace service): one trace per
//! run, a span per node attempt under the run's span, the GenAI attributes
//! of an LLM step, a replay linked to its source's trace with its reused
//! nodes marked, and a client's `traceparent` continued into the run.

use retake::v1 as pb;
use retake_test_support::db_dir::DbDir;
use retake_test_support::fake_http::{Fake, Reply};
use retake_test_support::openai::completion;
use retake_test_support::otlp::{ReceivedSpan, Receiver};
use retake_test_support::process::ServerCommand;

const KEY_VAR: &str = "RETAKE_SECRET_TRACE_KEY";

fn uuid_hex(run_id: &str) -> String {
    run_id.trim_start_matches("run_").replace('-', "")
}

fn of_run<'a>(spans: &'a [ReceivedSpan], run_id: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.attributes.get("retake.run_id").map(String::as_str) == Some(run_id))
        .collect()
}

#[tokio::test]
async fn a_run_is_one_trace_with_a_span_per_node_attempt() {
    let receiver = Receiver::start().await;
    let llm =
        Fake::start(|_, _| Reply::ok(completion("gpt-4o-2024-08-06", "short", 120, 40))).await;
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db())
        .args([
            "--otlp-endpoint",
            &receiver.url,
            "--allow-secret-host",
            "127.0.0.1",
        ])
        .env(KEY_VAR, "sk-trace")
        .log(dir.log())
        .spawn();
    let mut client = server.client().await;
    let yaml = format!(
        "name: traced\nnodes:\n  fetch: {{agent: local://echo, inputs: {{x: \"1\"}}, outputs: [o]}}\n  write:\n    agent: llm://openai/gpt-4o\n    inputs: {{x: \"${{fetch.o}}\"}}\n    outputs: [o]\n    depends_on: [fetch]\n    config: {{api_base: \"{}/v1\", api_key: \"${{env.{KEY_VAR}}}\", stream: false}}\n",
        llm.url()
    );
    let run = client.start_run(&yaml).await;
    client.finish(&run.id).await;

    let spans = receiver.wait_for(|s| of_run(s, &run.id).len() >= 3).await;
    let mine = of_run(&spans, &run.id);
    let root = mine
        .iter()
        .find(|s| s.name == "run traced")
        .expect("the run's span");
    assert_eq!(
        root.trace_id,
        uuid_hex(&run.id),
        "the run id is the trace id"
    );
    assert!(
        root.parent_span_id.is_empty() || spans.iter().any(|s| s.span_id == root.parent_span_id)
    );
    assert_eq!(root.attr("retake.status"), "completed");
    assert_eq!(root.service_name, "retake");
    for node in ["fetch", "write"] {
        let span = mine
            .iter()
            .find(|s| s.name == format!("node {node}"))
            .unwrap_or_else(|| panic!("no span of {node}: {mine:#?}"));
        assert_eq!(span.trace_id, root.trace_id);
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{node} is a child of the run"
        );
        assert_eq!(span.attr("retake.node_id"), node);
        assert_eq!(span.attr("retake.attempt"), "1");
        assert_eq!(span.attr("retake.reused"), "false");
    }
    let write = mine.iter().find(|s| s.name == "node write").unwrap();
    assert_eq!(write.attr("gen_ai.system"), "openai");
    assert_eq!(write.attr("gen_ai.request.model"), "gpt-4o");
    assert_eq!(write.attr("gen_ai.usage.input_tokens"), "120");
    assert_eq!(write.attr("gen_ai.usage.output_tokens"), "40");
    // No secret in any attribute.
    assert!(!format!("{spans:?}").contains("sk-trace"));

    // A replay: its own trace, linked to the source's, reused nodes marked.
    let replay = client
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.id.clone(),
            from_node: "write".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    client.finish(&replay.id).await;
    let spans = receiver
        .wait_for(|s| of_run(s, &replay.id).len() >= 3)
        .await;
    let theirs = of_run(&spans, &replay.id);
    let root_r = theirs.iter().find(|s| s.name == "run traced").unwrap();
    assert_eq!(root_r.trace_id, uuid_hex(&replay.id));
    assert_eq!(
        root_r.links,
        vec![(root.trace_id.clone(), root.span_id.clone())]
    );
    let fetch = theirs.iter().find(|s| s.name == "node fetch").unwrap();
    assert_eq!(fetch.attr("retake.reused"), "true");
    assert_eq!(fetch.attr("retake.reused_from_run"), run.id);
    let write = theirs.iter().find(|s| s.name == "node write").unwrap();
    assert_eq!(write.attr("retake.reused"), "false");
    server.kill9();
}

#[tokio::test]
async fn a_callers_traceparent_is_continued_into_the_run() {
    let receiver = Receiver::start().await;
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db())
        .args(["--otlp-endpoint", &receiver.url])
        .log(dir.log())
        .spawn();
    let mut client = server.client().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let mut req = tonic::Request::new(pb::StartRunRequest {
        workflow: "name: called\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{parent}-01").parse().unwrap(),
    );
    let run = client
        .runs
        .start_run(req)
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    client.finish(&run.id).await;
    let spans = receiver
        .wait_for(|s| s.iter().filter(|s| s.trace_id == trace).count() >= 3)
        .await;
    let rpc = spans
        .iter()
        .find(|s| s.name == "retake.v1.RunService/StartRun")
        .expect("the call's server span");
    assert_eq!(rpc.trace_id, trace);
    assert_eq!(rpc.parent_span_id, parent);
    assert_eq!(rpc.kind, 2, "a server span");
    assert_eq!(rpc.attr("rpc.system"), "grpc");
    let root = spans.iter().find(|s| s.name == "run called").unwrap();
    assert_eq!(root.trace_id, trace);
    assert_eq!(root.parent_span_id, rpc.span_id);
    let node = spans.iter().find(|s| s.name == "node a").unwrap();
    assert_eq!(
        (node.trace_id.as_str(), node.parent_span_id.as_str()),
        (trace, root.span_id.as_str())
    );
    server.kill9();
}

#[tokio::test]
async fn a_collector_that_is_down_slows_and_fails_nothing() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db())
        .args(["--otlp-endpoint", &format!("http://{closed}")])
        .log(dir.log())
        .spawn();
    let mut client = server.client().await;
    for _ in 0..20 {
        let run = client
            .start_run("name: quiet\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n")
            .await;
        let (run, _) = client.finish(&run.id).await;
        assert_eq!(run.status, pb::RunStatus::Completed as i32);
    }
    // The spans that could not go are counted.
    let url = server.url();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dropped = text
            .lines()
            .find_map(|l| l.strip_prefix("retake_trace_spans_dropped_total "))
            .map(|v| v.parse::<f64>().unwrap())
            .unwrap_or_default();
        if dropped > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dropped spans counted:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.kill9();
}
