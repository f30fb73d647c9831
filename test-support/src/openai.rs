//! OpenAI Chat Completions as the API sends it: a whole completion, or a
//! stream of `chat.completion.chunk` server-sent events.

use serde_json::{Value, json};

/// A `chat.completion` answering `text`.
pub fn completion(model: &str, text: &str, prompt_tokens: i64, completion_tokens: i64) -> Value {
    json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_44709d6fcb"
    })
}

/// The events of a streamed completion of `pieces`, each a whole
/// `data: …\n\n`: the role, one chunk per piece, the finish reason, the
/// usage (as with `stream_options.include_usage`), then `[DONE]`.
pub fn stream(
    model: &str,
    pieces: &[&str],
    prompt_tokens: i64,
    completion_tokens: i64,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_741_569_952, "model": model,
               "system_fingerprint": "fp_1", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
               "usage": null})
    };
    let mut out = vec![format!(
        "data: {}\n\n",
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null
        )
    )];
    for p in pieces {
        out.push(format!(
            "data: {}\n\n",
            chunk(json!({"content": p}), Value::Null)
        ));
    }
    out.push(format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_741_569_952, "model": model,
        "system_fingerprint": "fp_1", "choices": [],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}});
    out.push(format!("data: {usage}\n\n"));
    out.push("data: [DONE]\n\n".into());
    out
}
