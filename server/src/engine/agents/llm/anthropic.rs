//! Anthropic's Messages API (`POST {base}/messages`): the request body, the
//! answer, and the streamed events.

use super::super::AgentCall;
use super::super::error::quote;
use super::Answer;
use super::sse::SseEvent;
use serde_json::{Map, Value, json};

/// Config keys forwarded to the Messages API.
pub const KEYS: &[&str] = &[
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "stop_sequences",
];

/// The `anthropic-version` header every request carries.
pub const VERSION: &str = "2023-06-01";
/// The API requires `max_tokens`; this is sent when config has none.
const DEFAULT_MAX_TOKENS: u64 = 1024;

pub fn body(
    model: &str,
    system: Option<&str>,
    user: &str,
    config: &Map<String, Value>,
    stream: bool,
) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), DEFAULT_MAX_TOKENS.into());
    if let Some(s) = system {
        body.insert("system".into(), s.into());
    }
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": user}]),
    );
    for key in KEYS {
        if let Some(v) = config.get(*key).filter(|v| !v.is_null()) {
            body.insert((*key).into(), v.clone());
        }
    }
    // OpenAI's spelling of stop sequences works here too.
    if !body.contains_key("stop_sequences") {
        match config.get("stop") {
            Some(Value::String(s)) => {
                body.insert("stop_sequences".into(), json!([s]));
            }
            Some(list @ Value::Array(_)) => {
                body.insert("stop_sequences".into(), list.clone());
            }
            _ => {}
        }
    }
    if !body["max_tokens"].is_u64() {
        return Err(format!(
            "config.max_tokens must be a positive integer, got {}",
            body["max_tokens"]
        ));
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Ok(Value::Object(body))
}

/// A whole (not streamed) message.
pub fn parse(v: &Value) -> Result<Answer, String> {
    if v["type"] == "error" {
        return Err(format!("anthropic returned an error: {}", error(v)));
    }
    let Some(blocks) = v["content"].as_array() else {
        return Err(format!(
            "anthropic returned no content: {}",
            quote(v.to_string().as_bytes())
        ));
    };
    let content = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    Ok(Answer {
        content,
        model: v["model"].as_str().map(str::to_string),
        input_tokens: v["usage"]["input_tokens"].as_i64().unwrap_or(0),
        output_tokens: v["usage"]["output_tokens"].as_i64().unwrap_or(0),
    })
}

fn error(v: &Value) -> String {
    let e = &v["error"];
    match (e["type"].as_str(), e["message"].as_str()) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => e.to_string(),
    }
}

/// Handles one Messages stream event; true at `message_stop`.
pub fn event(event: &SseEvent, answer: &mut Answer, call: &AgentCall) -> Result<bool, String> {
    let data = event.data.trim();
    if data.is_empty() {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "anthropic sent a stream event that is not JSON ({e}): {}",
            quote(data.as_bytes())
        )
    })?;
    let kind = v["type"].as_str().or(event.event.as_deref()).unwrap_or("");
    match kind {
        "message_start" => {
            let m = &v["message"];
            if let Some(model) = m["model"].as_str() {
                answer.model = Some(model.to_string());
            }
            answer.input_tokens = m["usage"]["input_tokens"].as_i64().unwrap_or(0);
            answer.output_tokens = m["usage"]["output_tokens"].as_i64().unwrap_or(0);
        }
        "content_block_delta" => {
            if let Some(text) = v["delta"]["text"].as_str().filter(|t| !t.is_empty()) {
                answer.content.push_str(text);
                let _ = call.deltas.send(text.to_string());
            }
        }
        "message_delta" => {
            if let Some(o) = v["usage"]["output_tokens"].as_i64() {
                answer.output_tokens = o;
            }
            if let Some(i) = v["usage"]["input_tokens"].as_i64() {
                answer.input_tokens = i;
            }
        }
        "message_stop" => return Ok(true),
        "error" => return Err(format!("anthropic stream error: {}", error(&v))),
        _ => {}
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_forwards_only_known_keys() {
        let config = json!({"temperature": 0.2, "max_tokens": 50, "api_key": "x", "api_base": "y", "stream": true, "top_k": 3, "stop": "END"});
        let config = config.as_object().unwrap();
        let b = body("claude-sonnet-4", None, "hi", config, false).unwrap();
        assert_eq!(b["top_k"], 3);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert!(b.get("system").is_none() && b.get("stream").is_none() && b.get("stop").is_none());
        assert!(b.get("api_key").is_none() && b.get("api_base").is_none());
        let b = body("m", None, "hi", &Map::new(), true).unwrap();
        assert_eq!(b["max_tokens"], 1024);
    }
}
