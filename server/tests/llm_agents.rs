//! `llm://` nodes against fake OpenAI and Anthropic endpoints on 127.0.0.1
//! that speak the real wire formats (Chat Completions and Messages, plain
//! and streamed), driven through a real retake-server.

mod agents_support;

use agents_support::{Fake, Reply, Server, deltas, node, status};
use retake::v1 as pb;
use retake_test_support::anthropic::stream as anthropic_stream;
use retake_test_support::openai::{completion as openai_completion, stream as openai_stream};
use serde_json::json;
use std::time::Duration;

const KEY: &str = "sk-test-secret-123456";
const KEY_VAR: &str = "RETAKE_SECRET_TEST_LLM_KEY";

async fn server() -> Server {
    Server::start(&[(KEY_VAR, KEY)]).await
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[tokio::test]
async fn openai_chat_completion_records_model_usage_cost_and_output() {
    let fake = Fake::start(|_, _| {
        Reply::ok(openai_completion(
            "gpt-4o-2024-08-06",
            "Rust is a systems language.",
            120,
            40,
        ))
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-plain
nodes:
  summarize:
    agent: llm://openai/gpt-4o
    system_prompt: "Extract the key facts."
    inputs: {{topic: rust, facts: {{a: 1}}}}
    outputs: [result]
    config: {{temperature: 0.2, max_tokens: 800, stream: false, seed: 7, top_k: 5, api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (events, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "summarize");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(n.model, "gpt-4o-2024-08-06");
    let usage = n.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (120, 40));
    assert_close(usage.cost_usd, (120.0 * 2.5 + 40.0 * 10.0) / 1e6);
    assert_close(run.usage.unwrap().cost_usd, usage.cost_usd);
    assert_eq!(
        server.content(&n.output_artifact_ids[0]).await,
        "Rust is a systems language."
    );
    assert!(
        deltas(&events, "summarize").is_empty(),
        "no deltas without streaming"
    );

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.body["model"], "gpt-4o");
    assert_eq!(
        r.body["messages"],
        json!([
            {"role": "system", "content": "Extract the key facts."},
            {"role": "user", "content": "topic:\nrust\n\nfacts:\n{\n  \"a\": 1\n}"}
        ])
    );
    assert_eq!(
        (
            r.body["temperature"].clone(),
            r.body["max_tokens"].clone(),
            r.body["seed"].clone()
        ),
        (json!(0.2), json!(800), json!(7))
    );
    for absent in ["api_key", "api_base", "stream", "top_k", "stream_options"] {
        assert!(
            r.body.get(absent).is_none(),
            "{absent} was sent: {}",
            r.body
        );
    }
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn openai_streaming_forwards_tokens_as_events_and_sends_upstream_outputs() {
    let fake = Fake::start(|_, _| Reply::Sse {
        chunks: openai_stream(
            "gpt-4o-mini-2024-07-18",
            &["Hel", "lo", ", wor", "ld"],
            30,
            4,
        ),
        gap: Duration::from_millis(40),
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-stream
nodes:
  fetch:
    agent: local://mock
    config: {{response: "the facts"}}
    outputs: [result]
  write:
    agent: llm://openai/gpt-4o-mini
    outputs: [result]
    depends_on: [fetch]
    config: {{api_base: "{}/v1/", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (events, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "write");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(deltas(&events, "write"), ["Hel", "lo", ", wor", "ld"]);
    // The deltas come before the node completes.
    let last_delta = events
        .iter()
        .rposition(|e| e.kind == pb::EventKind::NodeOutputDelta as i32)
        .unwrap();
    let completed = events
        .iter()
        .position(|e| e.kind == pb::EventKind::NodeCompleted as i32 && e.node_id == "write")
        .unwrap();
    assert!(last_delta < completed);
    assert_eq!(
        server.content(&n.output_artifact_ids[0]).await,
        "Hello, world"
    );
    assert_eq!(n.model, "gpt-4o-mini-2024-07-18");
    let usage = n.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (30, 4));
    assert_close(usage.cost_usd, (30.0 * 0.15 + 4.0 * 0.60) / 1e6);

    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"], json!({"include_usage": true}));
    // No prompt: only the user message, built from the upstream output.
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": "fetch:\nthe facts"}])
    );
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn anthropic_messages_plain() {
    let fake = Fake::start(|_, _| {
        Reply::ok(json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "Bonjour"}, {"type": "text", "text": " !"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 200}
        }))
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-anthropic
nodes:
  translate:
    agent: llm://anthropic/claude-sonnet-4-20250514
    system_prompt: "Translate to French."
    inputs: {{text: hello}}
    outputs: [result]
    config: {{stream: false, temperature: 0.5, top_k: 10, stop: ["@@"], presence_penalty: 1, api_base: "{}/v1", api_key: "{KEY}"}}
"#,
        fake.url()
    );
    // A key written into the workflow itself is kept out of everything stored, too.
    let (_, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "translate");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(server.content(&n.output_artifact_ids[0]).await, "Bonjour !");
    assert_eq!(n.model, "claude-sonnet-4-20250514");
    let usage = n.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (1000, 200));
    assert_close(usage.cost_usd, (1000.0 * 3.0 + 200.0 * 15.0) / 1e6);

    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(r.header("authorization").is_none());
    assert_eq!(
        r.body,
        json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1024,
            "system": "Translate to French.",
            "messages": [{"role": "user", "content": "text:\nhello"}],
            "temperature": 0.5,
            "top_k": 10,
            "stop_sequences": ["@@"]
        })
    );
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn anthropic_messages_streaming() {
    let fake = Fake::start(|_, _| Reply::Sse {
        chunks: anthropic_stream(
            "claude-3-5-haiku-20241022",
            &["Once", " upon", " a time"],
            25,
            15,
        ),
        gap: Duration::from_millis(30),
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-anthropic-stream
nodes:
  story:
    agent: llm://anthropic/claude-3-5-haiku-latest
    system_prompt: "Tell a story."
    outputs: [result]
    config: {{max_tokens: 64, api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (events, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "story");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(deltas(&events, "story"), ["Once", " upon", " a time"]);
    assert_eq!(
        server.content(&n.output_artifact_ids[0]).await,
        "Once upon a time"
    );
    assert_eq!(n.model, "claude-3-5-haiku-20241022");
    let usage = n.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (25, 15));
    assert_close(usage.cost_usd, (25.0 * 0.8 + 15.0 * 4.0) / 1e6);
    let r = &fake.requests()[0];
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["max_tokens"], 64);
    // A node with only a prompt sends it as the user's message.
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": "Tell a story."}])
    );
    assert!(r.body.get("system").is_none());
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let fake = Fake::start(|_, n| match n {
        0 => Reply::Json {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "code": "rate_limit_exceeded"}}),
        },
        1 => Reply::status(503, json!({"error": {"message": "The server is overloaded", "type": "server_error"}})),
        _ => Reply::ok(openai_completion("gpt-4o", "finally", 5, 1)),
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-retry
nodes:
  ask:
    agent: llm://openai/gpt-4o
    inputs: {{q: why}}
    outputs: [result]
    config: {{stream: false, api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (events, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(server.content(&n.output_artifact_ids[0]).await, "finally");
    // Retried by the node's default policy: each request is an attempt.
    assert_eq!(n.attempt_count, 3);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == pb::EventKind::NodeRetrying as i32)
            .count(),
        2
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    let first_wait = reqs[1].at - reqs[0].at;
    assert!(
        first_wait >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {first_wait:?}"
    );
    let second_wait = reqs[2].at - reqs[1].at;
    assert!(
        second_wait >= Duration::from_millis(950),
        "no backoff after the 503: {second_wait:?}"
    );
    assert_eq!(reqs[0].body, reqs[2].body);
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn a_client_error_fails_at_once_with_the_providers_message_and_no_key() {
    // The fake quotes the key back in full, which a real provider would not.
    let fake = Fake::start(|_, _| {
        Reply::status(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                             "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        )
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-401
nodes:
  ask:
    agent: llm://openai/gpt-4o
    inputs: {{q: hi}}
    outputs: [result]
    retry_policy: {{max_retries: 2, backoff: fixed, initial_delay_ms: 10}}
    config: {{api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (_, run, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert!(
        n.error
            .starts_with("openai returned 401 Unauthorized: Incorrect API key provided: "),
        "{}",
        n.error
    );
    assert!(!n.error.contains(KEY), "{}", n.error);
    assert_eq!(
        pb::RunStatus::try_from(run.status).unwrap(),
        pb::RunStatus::Failed
    );
    // A rejected key is not retried, inside the agent or by the node's
    // policy: one request, one attempt, and the error says why.
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(n.attempt_count, 1);
    assert!(n.error.contains("not retried"), "{}", n.error);
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn an_invalid_request_or_unknown_model_is_not_retried_but_a_server_error_is() {
    for (status, body, requests) in [
        (
            400,
            json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}),
            1,
        ),
        (
            404,
            json!({"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}),
            1,
        ),
        // 5xx is retried by the node's policy only: 2 attempts, 2 requests.
        (503, json!({"error": {"message": "overloaded"}}), 2),
    ] {
        let fake = Fake::start(move |_, _| Reply::Json {
            status,
            headers: vec![("retry-after-ms", "1".into())],
            body: body.clone(),
        })
        .await;
        let mut server = server().await;
        let yaml = format!(
            "name: llm-{status}\nnodes:\n  ask:\n    agent: llm://openai/gpt-9\n    inputs: {{q: hi}}\n    outputs: [result]\n    retry_policy: {{max_retries: 2, backoff: fixed, initial_delay_ms: 1}}\n    config: {{api_base: \"{}/v1\", api_key: \"${{env.{KEY_VAR}}}\", stream: false}}\n",
            fake.url()
        );
        let (_, _, nodes) = server.run(&yaml).await;
        let n = node(&nodes, "ask");
        assert_eq!(super_status(n), pb::NodeStatus::Failed, "{status}");
        assert_eq!(fake.requests().len(), requests, "{status}: {}", n.error);
    }
}

/// Rate limits, the node's default policy and a declared one share one
/// budget: every request is an attempt of the node, recorded as such.
#[tokio::test]
async fn one_retry_budget_covers_rate_limits_and_the_nodes_policy() {
    let limit = || Reply::Json {
        status: 429,
        headers: vec![],
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    };
    let ok = || Reply::ok(openai_completion("gpt-4o", "done", 3, 1));
    // No retry_policy: two 429s, then an answer.
    let patient = Fake::start(move |_, n| if n < 2 { limit() } else { ok() }).await;
    // A rejected key: no policy retries it.
    let rejected = Fake::start(|_, _| {
        Reply::status(
            401,
            json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        )
    })
    .await;
    // A declared budget of 2 attempts against three 429s.
    let budgeted = Fake::start(move |_, n| if n < 3 { limit() } else { ok() }).await;
    let mut server = server().await;
    let entry = |id: &str, fake: &Fake, policy: &str| {
        format!(
            "  {id}:\n    agent: llm://openai/gpt-4o\n    inputs: {{q: hi}}\n    outputs: [result]\n{policy}    config: {{stream: false, api_base: \"{}/v1\", api_key: \"${{env.{KEY_VAR}}}\"}}\n",
            fake.url()
        )
    };
    let yaml = format!(
        "name: llm-one-budget\nnodes:\n{}{}{}",
        entry("patient", &patient, ""),
        entry("rejected", &rejected, ""),
        entry(
            "budgeted",
            &budgeted,
            "    retry_policy: {max_retries: 2, backoff: fixed, initial_delay_ms: 1}\n"
        ),
    );
    let (events, run, nodes) = server.run(&yaml).await;
    let retrying = |id: &str| {
        events
            .iter()
            .filter(|e| e.kind == pb::EventKind::NodeRetrying as i32 && e.node_id == id)
            .count()
    };

    let n = node(&nodes, "patient");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(n.attempt_count, 3);
    assert_eq!(n.attempts.len(), 3);
    assert!(
        n.attempts[0]
            .error
            .starts_with("openai returned 429 Too Many Requests: Rate limit reached"),
        "{}",
        n.attempts[0].error
    );
    assert!(n.attempts[2].error.is_empty());
    assert_eq!(retrying("patient"), 2);
    assert_eq!(patient.requests().len(), 3);

    let n = node(&nodes, "rejected");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert_eq!(n.attempt_count, 1);
    // Without a written policy there is nothing to explain.
    assert!(!n.error.contains("not retried"), "{}", n.error);
    assert_eq!(retrying("rejected"), 0);
    assert_eq!(rejected.requests().len(), 1);

    let n = node(&nodes, "budgeted");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert_eq!(n.attempt_count, 2);
    assert!(n.error.contains("429"), "{}", n.error);
    assert_eq!(retrying("budgeted"), 1);
    assert_eq!(budgeted.requests().len(), 2, "not 2 attempts x 5 tries");

    assert_eq!(
        pb::RunStatus::try_from(run.status).unwrap(),
        pb::RunStatus::Failed
    );
    server.assert_secret_absent(&run.id, KEY).await;
}

fn super_status(n: &pb::NodeExecution) -> pb::NodeStatus {
    status(n)
}

#[tokio::test]
async fn a_slow_provider_runs_into_the_deadline() {
    let fake = Fake::start(|_, _| {
        Reply::After(
            Duration::from_secs(5),
            Box::new(Reply::ok(openai_completion("gpt-4o", "late", 1, 1))),
        )
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-slow
nodes:
  ask:
    agent: llm://openai/gpt-4o
    inputs: {{q: hi}}
    outputs: [result]
    deadline_ms: 400
    retry_policy: {{max_retries: 2, backoff: fixed, initial_delay_ms: 10}}
    config: {{api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let started = std::time::Instant::now();
    let (_, run, nodes) = server.run(&yaml).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the deadline did not cut the call short"
    );
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert_eq!(
        pb::FailureOrigin::try_from(n.error_origin).unwrap(),
        pb::FailureOrigin::Timeout
    );
    assert!(
        n.error.contains("deadline of 400 ms exceeded"),
        "{}",
        n.error
    );
    assert_eq!(n.attempt_count, 2);
    assert_eq!(fake.requests().len(), 2);
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn missing_keys_and_unreachable_endpoints_are_explained() {
    let mut server = Server::start(&[]).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        r#"
name: llm-misconfigured
nodes:
  no_key:
    agent: llm://together/meta-llama/Llama-3.3-70B-Instruct-Turbo
    inputs: {{q: hi}}
    outputs: [result]
    retry_policy: {{max_retries: 1}}
  unreachable:
    agent: llm://custom/some-model
    inputs: {{q: hi}}
    outputs: [result]
    retry_policy: {{max_retries: 1}}
    config: {{api_base: "http://{closed}/v1"}}
"#
    );
    let (_, _, nodes) = server.run(&yaml).await;
    let n = node(&nodes, "no_key");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    if std::env::var("TOGETHER_API_KEY").is_err() {
        assert!(
            n.error
                .contains("set TOGETHER_API_KEY in the server's environment"),
            "{}",
            n.error
        );
    }
    let n = node(&nodes, "unreachable");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert!(
        n.error.starts_with(&format!(
            "cannot reach custom at http://{closed}/v1/chat/completions"
        )),
        "{}",
        n.error
    );
}

#[tokio::test]
async fn streamed_text_is_live_only_and_a_late_watcher_gets_it_whole() {
    let fake = Fake::start(|_, _| Reply::Sse {
        chunks: openai_stream("gpt-4o-mini", &["one ", "two ", "three ", "four"], 5, 4),
        gap: Duration::from_millis(150),
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        "name: llm-late\nnodes:\n  write:\n    agent: llm://openai/gpt-4o-mini\n    inputs: {{q: count}}\n    outputs: [result]\n    config: {{api_base: \"{}/v1\", api_key: \"${{env.{KEY_VAR}}}\"}}\n",
        fake.url()
    );
    let id = server.start_run(&yaml).await.id;
    // Join while the node streams: the text so far comes as one delta,
    // then the rest live, each piece exactly once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = server.events(&id, 0).await;
    assert_eq!(deltas(&late, "write").concat(), "one two three four");
    assert!(
        late.iter()
            .filter(|e| e.kind == pb::EventKind::NodeOutputDelta as i32)
            .all(|e| e.sequence == 0 && e.run_id == id)
    );
    // The durable log has no deltas, and its sequence has no gaps.
    let history = server.events(&id, 0).await;
    assert!(deltas(&history, "write").is_empty());
    let seqs: Vec<i64> = history.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let (_, nodes) = server.get(&id).await;
    assert_eq!(
        server
            .content(&node(&nodes, "write").output_artifact_ids[0])
            .await,
        "one two three four"
    );
}

#[tokio::test]
async fn a_provider_that_keeps_streaming_still_runs_into_the_deadline() {
    // Forty tokens 50 ms apart take two seconds; the deadline is 300 ms.
    // Every token must not restart the deadline.
    let tokens: Vec<String> = (0..40).map(|i| format!("t{i} ")).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let chunks = openai_stream("gpt-4o-mini", &tokens, 10, 40);
    let fake = Fake::start(move |_, _| Reply::Sse {
        chunks: chunks.clone(),
        gap: Duration::from_millis(50),
    })
    .await;
    let mut server = server().await;
    let yaml = format!(
        r#"
name: llm-stream-deadline
nodes:
  write:
    agent: llm://openai/gpt-4o-mini
    inputs: {{q: hi}}
    outputs: [result]
    deadline_ms: 300
    config: {{api_base: "{}/v1", api_key: "${{env.{KEY_VAR}}}"}}
"#,
        fake.url()
    );
    let (_, run, nodes) = server.run(&yaml).await;
    assert_eq!(
        pb::RunStatus::try_from(run.status).unwrap(),
        pb::RunStatus::Failed
    );
    let n = node(&nodes, "write");
    assert_eq!(
        pb::FailureOrigin::try_from(n.error_origin).unwrap(),
        pb::FailureOrigin::Timeout,
        "{}",
        n.error
    );
    assert!(
        n.error.contains("deadline of 300 ms exceeded"),
        "{}",
        n.error
    );
}
