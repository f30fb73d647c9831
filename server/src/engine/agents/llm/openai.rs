//! OpenAI Chat Completions (`POST {base}/chat/completions`), which every
//! provider but Anthropic speaks: the request body, the answer, and the
//! streamed chunks.

use super::super::AgentCall;
use super::super::error::quote;
use super::Answer;
use super::sse::SseEvent;
use serde_json::{Map, Value, json};

/// Config keys forwarded to Chat Completions.
pub const KEYS: &[&str] = &[
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
];

pub fn body(
    provider: &str,
    model: &str,
    system: Option<&str>,
    user: &str,
    config: &Map<String, Value>,
    stream: bool,
) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": user}));
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(messages));
    for key in KEYS {
        if let Some(v) = config.get(*key).filter(|v| !v.is_null()) {
            body.insert((*key).into(), v.clone());
        }
    }
    if stream {
        body.insert("stream".into(), true.into());
        // Mistral rejects unknown fields and reports usage in its last chunk anyway.
        if provider != "mistral" {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    Value::Object(body)
}

/// A whole (not streamed) completion.
pub fn parse(provider: &str, v: &Value) -> Result<Answer, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let m = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(format!("{provider} returned an error: {m}"));
    }
    let message = &v["choices"][0]["message"];
    if message.is_null() {
        return Err(format!(
            "{provider} returned no choices: {}",
            quote(v.to_string().as_bytes())
        ));
    }
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        // Content given as parts.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => match message["refusal"].as_str() {
            Some(r) => return Err(format!("the model refused: {r}")),
            None => String::new(),
        },
    };
    let (input_tokens, output_tokens) = usage(v).unwrap_or((0, 0));
    Ok(Answer {
        content,
        model: v["model"].as_str().map(str::to_string),
        input_tokens,
        output_tokens,
    })
}

/// Prompt and completion tokens, where OpenAI or Groq put them.
fn usage(v: &Value) -> Option<(i64, i64)> {
    let usage = [&v["usage"], &v["x_groq"]["usage"]]
        .into_iter()
        .find(|u| u.is_object())?;
    Some((
        usage["prompt_tokens"].as_i64().unwrap_or(0),
        usage["completion_tokens"].as_i64().unwrap_or(0),
    ))
}

/// Handles one Chat Completions chunk; true at `[DONE]`.
pub fn event(
    provider: &str,
    event: &SseEvent,
    answer: &mut Answer,
    call: &AgentCall,
) -> Result<bool, String> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(true);
    }
    if data.is_empty() {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "{provider} sent a stream chunk that is not JSON ({e}): {}",
            quote(data.as_bytes())
        )
    })?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let m = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(format!("{provider} stream error: {m}"));
    }
    if let Some(m) = v["model"].as_str().filter(|m| !m.is_empty()) {
        answer.model = Some(m.to_string());
    }
    if let Some(text) = v["choices"][0]["delta"]["content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        answer.content.push_str(text);
        let _ = call.deltas.send(text.to_string());
    }
    if let Some((i, o)) = usage(&v) {
        answer.input_tokens = i;
        answer.output_tokens = o;
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
        let b = body("openai", "gpt-4o", Some("sys"), "hi", config, true);
        assert_eq!(
            b["messages"],
            json!([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(
            (
                b["temperature"].clone(),
                b["max_tokens"].clone(),
                b["stop"].clone()
            ),
            (json!(0.2), json!(50), json!("END"))
        );
        assert!(
            b.get("api_key").is_none() && b.get("top_k").is_none() && b.get("api_base").is_none()
        );
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
    }
}
