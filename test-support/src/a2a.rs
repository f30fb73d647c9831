//! A2A 1.0 over JSON-RPC as the a2a-sdk serves it: the agent card, tasks,
//! and a fake agent built on [`Fake`].

use crate::fake_http::{Fake, Recorded, Reply};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A 1.0 agent card whose JSON-RPC interface is `BASE/rpc` (a gRPC one,
/// listed first, is there to be passed over).
pub fn card_v1(base: &str) -> Value {
    json!({
        "name": "Fake agent",
        "description": "answers tests",
        "supportedInterfaces": [
            {"url": format!("{base}/grpc"), "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": format!("{base}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "version": "1.0.0",
        "capabilities": {"streaming": false},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": []
    })
}

/// The JSON-RPC success answer to `req`.
pub fn rpc_result(req: &Recorded, result: Value) -> Reply {
    Reply::ok(json!({"jsonrpc": "2.0", "id": req.body["id"], "result": result}))
}

/// A 1.0 task in `state`, with a status message when `status_text` is set.
pub fn task_v1(id: &str, state: &str, artifacts: Value, status_text: Option<&str>) -> Value {
    let mut status = json!({"state": state, "timestamp": "2026-01-01T00:00:00Z"});
    if let Some(t) = status_text {
        status["message"] =
            json!({"messageId": "s1", "role": "ROLE_AGENT", "parts": [{"text": t}]});
    }
    json!({"id": id, "contextId": "ctx-1", "status": status, "artifacts": artifacts,
           "history": [{"messageId": "m0", "role": "ROLE_USER", "parts": [{"text": "…"}]}]})
}

/// A fake 1.0 agent whose base URL is the server's own: it serves its
/// card, and `answer(request, n)` answers each JSON-RPC call, `n` counting
/// the `GetTask` calls (1, 2, …; 0 for other methods).
pub async fn fake_v1(answer: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let gets = Arc::new(AtomicUsize::new(0));
    Fake::start(move |req, _| {
        if req.method == "GET" && req.path == "/.well-known/agent-card.json" {
            let host = req.header("host").unwrap_or_default();
            return Reply::ok(card_v1(&format!("http://{host}")));
        }
        if req.path == "/rpc" {
            let n = if req.body["method"] == "GetTask" {
                gets.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                0
            };
            return answer(req, n);
        }
        Reply::status(404, json!({"detail": "Not Found"}))
    })
    .await
}

/// The JSON-RPC calls `fake` received (its POSTs).
pub fn rpc_calls(fake: &Fake) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}
