//! `a2a://` nodes through a real retake-server: against fake agents on
//! 127.0.0.1 that speak A2A 1.0 and 0.3 JSON-RPC as the a2a-sdk serves
//! them, and — with RETAKE_A2A_SDK_TESTS=1 — against real agents built
//! with the official Python a2a-sdk (tests/a2a_sdk/agent.py).

mod agents_support;

use agents_support::{Fake, Reply, Server, node, status};
use retake::v1 as pb;
use retake_test_support::a2a::{fake_v1, rpc_calls, rpc_result, task_v1};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const KEY: &str = "a2a-test-token-987654";
const KEY_VAR: &str = "RETAKE_SECRET_TEST_A2A_TOKEN";

async fn server() -> Server {
    Server::start(&[(KEY_VAR, KEY)]).await
}

fn workflow(url: &str, extra: &str) -> String {
    format!(
        r#"
name: a2a
nodes:
  ask:
    agent: a2a://{url}
    system_prompt: "Be brief."
    inputs: {{q: hello}}
    outputs: [result]
    retry_policy: {{max_retries: 1}}
    config: {{api_key: "${{env.{KEY_VAR}}}"}}
{extra}"#
    )
}

#[tokio::test]
async fn a_v1_agent_answering_with_a_message() {
    let fake = fake_v1(|req, _| {
        rpc_result(req, json!({"message": {"messageId": "r1", "role": "ROLE_AGENT", "parts": [{"text": "hi there"}, {"text": "bye"}]}}))
    })
    .await;
    let mut server = server().await;
    let (_, run, nodes) = server.run(&workflow(&fake.url(), "")).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(
        server.content(&n.output_artifact_ids[0]).await,
        "hi there\nbye"
    );
    assert_eq!(n.model, "Fake agent");

    let calls = rpc_calls(&fake);
    assert_eq!(calls.len(), 1);
    let r = &calls[0];
    assert_eq!(r.header("a2a-version"), Some("1.0"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        (r.body["jsonrpc"].clone(), r.body["method"].clone()),
        (json!("2.0"), json!("SendMessage"))
    );
    let message = &r.body["params"]["message"];
    assert_eq!(message["role"], "ROLE_USER");
    assert_eq!(
        message["parts"],
        json!([{"text": "Be brief."}, {"text": "q:\nhello"}])
    );
    assert!(
        message["messageId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        r.body["params"]["configuration"],
        json!({"returnImmediately": true})
    );
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn a_v1_task_is_polled_until_it_completes() {
    let fake = fake_v1(|req, gets| match req.body["method"].as_str() {
        Some("SendMessage") => rpc_result(req, json!({"task": task_v1("task-1", "TASK_STATE_SUBMITTED", json!([]), None)})),
        Some("GetTask") if gets < 3 => rpc_result(req, task_v1("task-1", "TASK_STATE_WORKING", json!([]), Some("thinking"))),
        Some("GetTask") => rpc_result(
            req,
            task_v1(
                "task-1",
                "TASK_STATE_COMPLETED",
                json!([{"artifactId": "a1", "name": "answer", "parts": [{"text": "the answer"}, {"data": {"score": 0.9}}]}]),
                None,
            ),
        ),
        _ => Reply::status(400, json!({})),
    })
    .await;
    let mut server = server().await;
    let (_, run, nodes) = server.run(&workflow(&fake.url(), "")).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(
        server.content(&n.output_artifact_ids[0]).await,
        "the answer\n{\"score\":0.9}"
    );
    let calls = rpc_calls(&fake);
    let gets: Vec<_> = calls
        .iter()
        .filter(|r| r.body["method"] == "GetTask")
        .collect();
    assert_eq!(gets.len(), 3);
    assert!(
        gets.iter()
            .all(|r| r.body["params"] == json!({"id": "task-1"})
                && r.header("a2a-version") == Some("1.0"))
    );
    // Backoff: 200 ms, then 400 ms, then 800 ms.
    assert!(
        gets[2].at - gets[1].at >= Duration::from_millis(750),
        "{:?}",
        gets[2].at - gets[1].at
    );
    // Nothing to cancel once the task completed.
    assert!(!calls.iter().any(|r| r.body["method"] == "CancelTask"));
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn a_v03_agent_with_the_older_card_and_methods() {
    let fake = Fake::start(|req, _| {
        let host = req.header("host").unwrap_or_default().to_string();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.well-known/agent.json") => Reply::ok(json!({
                "name": "Old agent", "description": "0.3", "url": format!("http://{host}/a2a"), "protocolVersion": "0.3.0",
                "preferredTransport": "JSONRPC", "version": "1", "capabilities": {}, "defaultInputModes": ["text"],
                "defaultOutputModes": ["text"], "skills": []
            })),
            ("POST", "/a2a") => match req.body["method"].as_str() {
                Some("message/send") => rpc_result(req, json!({"kind": "task", "id": "t-03", "contextId": "c", "status": {"state": "working"}})),
                Some("tasks/get") => rpc_result(
                    req,
                    json!({"kind": "task", "id": "t-03", "contextId": "c", "status": {"state": "completed"},
                           "artifacts": [{"artifactId": "a", "parts": [{"kind": "data", "data": {"total": 3, "items": ["x", "y", "z"]}}]}]}),
                ),
                _ => Reply::ok(json!({"jsonrpc": "2.0", "id": req.body["id"], "error": {"code": -32601, "message": "Method not found"}})),
            },
            _ => Reply::status(404, json!({"detail": "Not Found"})),
        }
    })
    .await;
    let mut server = server().await;
    let (_, run, nodes) = server.run(&workflow(&fake.url(), "")).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    let (_, all) = server.get(&run.id).await;
    assert_eq!(all.len(), 1);
    let content = server.content(&n.output_artifact_ids[0]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&content).unwrap(),
        json!({"total": 3, "items": ["x", "y", "z"]})
    );
    let art = server
        .artifacts
        .get_artifact(pb::GetArtifactRequest {
            artifact_id: n.output_artifact_ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(art.artifact.unwrap().media_type, "application/json");

    let reqs = fake.requests();
    let paths: Vec<_> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /.well-known/agent-card.json",
            "GET /.well-known/agent.json",
            "POST /a2a",
            "POST /a2a"
        ]
    );
    let send = &reqs[2];
    assert_eq!(send.body["method"], "message/send");
    assert_eq!(send.header("a2a-version"), Some("0.3"));
    let message = &send.body["params"]["message"];
    assert_eq!(
        (message["kind"].clone(), message["role"].clone()),
        (json!("message"), json!("user"))
    );
    assert_eq!(
        message["parts"],
        json!([{"kind": "text", "text": "Be brief."}, {"kind": "text", "text": "q:\nhello"}])
    );
    assert_eq!(
        send.body["params"]["configuration"],
        json!({"blocking": false})
    );
    assert_eq!(
        (
            reqs[3].body["method"].clone(),
            reqs[3].body["params"].clone()
        ),
        (json!("tasks/get"), json!({"id": "t-03"}))
    );
    server.assert_secret_absent(&run.id, KEY).await;
}

#[tokio::test]
async fn failed_rejected_and_waiting_tasks_and_rpc_errors_fail_the_node_with_the_agents_words() {
    let fake = fake_v1(|req, _| {
        let q = req.body["params"]["message"]["parts"].to_string();
        let state = if q.contains("fail") {
            "TASK_STATE_FAILED"
        } else if q.contains("reject") {
            "TASK_STATE_REJECTED"
        } else if q.contains("input") {
            "TASK_STATE_INPUT_REQUIRED"
        } else {
            return Reply::ok(json!({"jsonrpc": "2.0", "id": req.body["id"],
                "error": {"code": -32602, "message": "Invalid params", "data": "message.parts must not be empty"}}));
        };
        rpc_result(req, json!({"task": task_v1("t-x", state, json!([]), Some(&format!("reason for {state}")))}))
    })
    .await;
    let mut server = server().await;
    let url = fake.url();
    let node_yaml = |id: &str, q: &str| {
        format!(
            "  {id}:\n    agent: a2a://{url}\n    inputs: {{q: {q}}}\n    outputs: [result]\n    retry_policy: {{max_retries: 1}}\n"
        )
    };
    let yaml = format!(
        "name: a2a-failures\nnodes:\n{}{}{}{}",
        node_yaml("failed", "fail"),
        node_yaml("rejected", "reject"),
        node_yaml("waiting", "input"),
        node_yaml("error", "other")
    );
    let (_, run, nodes) = server.run(&yaml).await;
    assert_eq!(
        pb::RunStatus::try_from(run.status).unwrap(),
        pb::RunStatus::Failed
    );
    let err = |id: &str| {
        let n = node(&nodes, id);
        assert_eq!(status(n), pb::NodeStatus::Failed, "{id}");
        n.error.clone()
    };
    assert_eq!(
        err("failed"),
        "the A2A agent's task t-x ended failed: reason for TASK_STATE_FAILED"
    );
    assert_eq!(
        err("rejected"),
        "the A2A agent's task t-x ended rejected: reason for TASK_STATE_REJECTED"
    );
    let waiting = err("waiting");
    assert!(waiting.starts_with("the A2A agent needs more input (task t-x is input-required): reason for TASK_STATE_INPUT_REQUIRED"), "{waiting}");
    assert_eq!(
        err("error"),
        "the A2A agent answered SendMessage with error -32602: Invalid params (message.parts must not be empty)"
    );
}

/// A rate-limited agent is retried by the node's default policy after the
/// wait it asks for, even when its answer carries a JSON-RPC error.
#[tokio::test]
async fn a_rate_limited_agent_is_retried_after_its_retry_after() {
    let sends = Arc::new(AtomicUsize::new(0));
    let fake = fake_v1(move |req, _| {
        if sends.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Json {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                body: json!({"jsonrpc": "2.0", "id": req.body["id"],
                    "error": {"code": -32000, "message": "Too many requests"}}),
            };
        }
        rpc_result(req, json!({"message": {"messageId": "r1", "role": "ROLE_AGENT", "parts": [{"text": "at last"}]}}))
    })
    .await;
    let mut server = server().await;
    let (events, _, nodes) = server
        .run(&workflow(&fake.url(), "").replace("    retry_policy: {max_retries: 1}\n", ""))
        .await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Completed, "{}", n.error);
    assert_eq!(server.content(&n.output_artifact_ids[0]).await, "at last");
    assert_eq!(n.attempt_count, 2);
    assert!(
        n.attempts[0].error.contains("429 Too Many Requests"),
        "{}",
        n.attempts[0].error
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == pb::EventKind::NodeRetrying as i32)
            .count(),
        1
    );
    let calls = rpc_calls(&fake);
    assert_eq!(calls.len(), 2);
    let wait = calls[1].at - calls[0].at;
    assert!(
        wait >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {wait:?}"
    );
}

#[tokio::test]
async fn a_task_past_the_deadline_fails_the_node_and_is_cancelled() {
    let fake = fake_v1(|req, _| match req.body["method"].as_str() {
        Some("CancelTask") => rpc_result(
            req,
            task_v1("t-long", "TASK_STATE_CANCELED", json!([]), None),
        ),
        _ => rpc_result(
            req,
            json!({"task": task_v1("t-long", "TASK_STATE_WORKING", json!([]), None)}),
        ),
    })
    .await;
    let mut server = server().await;
    let (_, _, nodes) = server
        .run(
            &workflow(&fake.url(), "")
                .replace("retry_policy: {max_retries: 1}", "deadline_ms: 700"),
        )
        .await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    assert_eq!(
        pb::FailureOrigin::try_from(n.error_origin).unwrap(),
        pb::FailureOrigin::Timeout
    );
    // The cancel request goes out in the background.
    let mut cancelled = false;
    for _ in 0..50 {
        if let Some(r) = rpc_calls(&fake)
            .iter()
            .find(|r| r.body["method"] == "CancelTask")
        {
            assert_eq!(r.body["params"], json!({"id": "t-long"}));
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cancelled, "no CancelTask was sent");
}

#[tokio::test]
async fn an_agent_without_a_card_is_explained() {
    let fake = Fake::start(|_, _| Reply::status(404, json!({"detail": "Not Found"}))).await;
    let mut server = server().await;
    let (_, _, nodes) = server.run(&workflow(&fake.url(), "")).await;
    let n = node(&nodes, "ask");
    assert_eq!(status(n), pb::NodeStatus::Failed);
    let url = fake.url();
    assert_eq!(
        n.error,
        format!(
            "no A2A agent card found: {url}/.well-known/agent-card.json (404 Not Found), {url}/.well-known/agent.json (404 Not Found)"
        )
    );
}

/// The agents of tests/a2a_sdk/agent.py, served by the official SDK.
struct SdkAgents {
    child: Child,
    port: u16,
}

impl Drop for SdkAgents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sdk_agents() -> SdkAgents {
    let python = std::env::var("RETAKE_A2A_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a2a_sdk/agent.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        panic!(
            "agent.py did not start (is a2a-sdk installed? pip install -r server/tests/a2a_sdk/requirements.txt): {line:?}"
        );
    };
    SdkAgents { child, port }
}

#[tokio::test]
async fn agents_served_by_the_official_python_sdk() {
    if std::env::var("RETAKE_A2A_SDK_TESTS").as_deref() != Ok("1") {
        println!(
            "skipped: set RETAKE_A2A_SDK_TESTS=1 (with server/tests/a2a_sdk/requirements.txt installed) to run against the Python a2a-sdk"
        );
        return;
    }
    let agents = start_sdk_agents();
    let base = format!("http://127.0.0.1:{}", agents.port);
    let mut server = server().await;
    let yaml = format!(
        r#"
name: a2a-sdk
defaults:
  deadline_ms: 20000
  retry_policy: {{max_retries: 1}}
nodes:
  echo:
    agent: a2a://{base}/echo
    system_prompt: "Be brief."
    inputs: {{q: hello}}
    outputs: [result]
  slow:
    agent: a2a://{base}/slow
    inputs: {{q: work}}
    outputs: [result]
  data:
    agent: a2a://{base}/data
    inputs: {{q: count these words}}
    outputs: [result]
  legacy:
    agent: a2a://{base}/legacy
    inputs: {{q: old}}
    outputs: [result]
  chained:
    agent: a2a://{base}/echo
    outputs: [result]
    depends_on: [echo]
  failing:
    agent: a2a://{base}/failing
    inputs: {{q: something}}
    outputs: [result]
  asking:
    agent: a2a://{base}/asking
    inputs: {{q: weather}}
    outputs: [result]
"#
    );
    let (_, _, nodes) = server.run(&yaml).await;
    let ok = |id: &str| {
        let n = node(&nodes, id);
        assert_eq!(status(n), pb::NodeStatus::Completed, "{id}: {}", n.error);
        n.output_artifact_ids[0].clone()
    };
    let echo = ok("echo");
    assert_eq!(server.content(&echo).await, "echo: Be brief.\nq:\nhello");
    assert_eq!(node(&nodes, "echo").model, "echo");
    let slow = ok("slow");
    assert_eq!(server.content(&slow).await, "done: q:\nwork");
    assert!(
        node(&nodes, "slow").latency_ms >= 900,
        "the slow task was not waited for"
    );
    let data = ok("data");
    assert_eq!(
        serde_json::from_str::<Value>(&server.content(&data).await).unwrap(),
        json!({"words": 4.0, "first": "q:"})
    );
    let legacy = ok("legacy");
    assert_eq!(server.content(&legacy).await, "done: q:\nold");
    let chained = ok("chained");
    assert_eq!(
        server.content(&chained).await,
        "echo: echo:\necho: Be brief.\nq:\nhello"
    );

    let failing = node(&nodes, "failing");
    assert_eq!(status(failing), pb::NodeStatus::Failed);
    assert!(
        failing
            .error
            .contains("ended failed: cannot do that: the input is too vague"),
        "{}",
        failing.error
    );
    let asking = node(&nodes, "asking");
    assert_eq!(status(asking), pb::NodeStatus::Failed);
    assert!(
        asking.error.contains("needs more input")
            && asking.error.contains("Which city do you mean?"),
        "{}",
        asking.error
    );
}
