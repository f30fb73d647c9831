//! `local://` agents: deterministic building blocks for tests, demos and
//! "mock the LLM" swaps.

use super::{AgentCall, AgentError, AgentOutput, JSON, TEXT, echo_document};
use serde_json::Value;

pub async fn execute(name: &str, call: &AgentCall) -> Result<AgentOutput, AgentError> {
    match name {
        "echo" => Ok(echo(call)),
        "mock" => mock(call).map_err(AgentError::configuration),
        "fail" => {
            let message = call
                .config
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("local://fail failed as configured");
            // With `times`, a stand-in for a flaky step: its failures are
            // transient, so the retry policy applies until it recovers.
            // Without, it fails every attempt, and no retry can help.
            match call.config.get("times").and_then(Value::as_u64) {
                Some(n) if u64::from(call.attempt) > n => Ok(echo(call)),
                Some(_) => Err(AgentError::transient(message)),
                None => Err(AgentError::permanent(message)),
            }
        }
        "sleep" => {
            let ms = match call.config.get("ms") {
                None => 1000,
                Some(v) => v.as_u64().ok_or_else(|| {
                    AgentError::configuration(format!(
                        "config.ms must be a non-negative integer, got {v}"
                    ))
                })?,
            };
            // Dropping this future (cancel, deadline) ends the sleep at once.
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(echo(call))
        }
        // A bug in an agent, on demand, for the tests of how a run survives one.
        #[cfg(feature = "fault-injection")]
        "panic" => panic!("local://panic panicked as configured"),
        other => Err(AgentError::configuration(format!(
            "unknown local agent 'local://{other}'"
        ))),
    }
}

fn echo(call: &AgentCall) -> AgentOutput {
    AgentOutput {
        content: echo_document(call),
        media_type: JSON,
        ..Default::default()
    }
}

fn mock(call: &AgentCall) -> Result<AgentOutput, String> {
    let response = match (call.config.get("response"), call.config.get("responses")) {
        (Some(r), _) => r.clone(),
        (None, Some(Value::Array(list))) if !list.is_empty() => {
            list[(call.attempt.saturating_sub(1) as usize) % list.len()].clone()
        }
        (None, Some(_)) => return Err("config.responses must be a non-empty list".into()),
        // A stand-in for any step (an LLM swapped out in a replay): the
        // same node and inputs always give the same text.
        (None, None) => {
            let seed = format!("{}\n{}", call.node_id, echo_document(call));
            let digest = crate::store::sha256_hex(seed.as_bytes());
            Value::String(format!(
                "mock output of '{}' ({})",
                call.node_id,
                &digest[..12]
            ))
        }
    };
    Ok(match response {
        Value::String(text) => AgentOutput {
            content: text,
            media_type: TEXT,
            model: Some("mock".into()),
            ..Default::default()
        },
        other => AgentOutput {
            content: other.to_string(),
            media_type: JSON,
            model: Some("mock".into()),
            ..Default::default()
        },
    })
}
