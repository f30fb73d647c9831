//! Keeping secrets out of everything retake stores or returns: config keys
//! that hold credentials are redacted, and resolved `${env.*}` values are
//! scrubbed from any text (errors, events) before it leaves the executor.

use serde_json::{Map, Value};

pub const REDACTED: &str = "[redacted]";

/// Config keys whose values are credentials.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "api_key",
        "apikey",
        "token",
        "secret",
        "password",
        "authorization",
        "auth_header",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The config as it may be stored: secret keys and `${env.*}` values redacted.
pub fn redact_config(config: &Map<String, Value>) -> Map<String, Value> {
    config
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                Value::String(REDACTED.into())
            } else {
                redact_env_values(v)
            };
            (k.clone(), v)
        })
        .collect()
}

fn redact_env_values(v: &Value) -> Value {
    match v {
        // The reference itself is not secret, only what it resolves to,
        // which is never written here: keep `${env.NAME}` readable.
        Value::Object(m) => Value::Object(redact_config(m)),
        Value::Array(items) => Value::Array(items.iter().map(redact_env_values).collect()),
        other => other.clone(),
    }
}

/// Literal credentials written in a workflow's config, to keep out of the
/// stored snapshot. `${env.*}` references are not secrets themselves.
pub fn literal_secrets(config: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in config {
        match v {
            Value::String(s)
                if is_secret_key(k) && !s.contains("${") && s != REDACTED && s.len() >= 8 =>
            {
                out.push(s.clone())
            }
            Value::Object(m) => literal_secrets(m, out),
            _ => {}
        }
    }
}

/// Scrubs every known secret value out of `text`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        // Short values would redact ordinary words; real keys are long.
        if s.len() >= 6 {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_keys_and_scrubs_values() {
        let config = serde_json::json!({"api_key": "sk-123456", "temperature": 0.2, "headers": {"Authorization": "Bearer x"}});
        let red = redact_config(config.as_object().unwrap());
        assert_eq!(red["api_key"], REDACTED);
        assert_eq!(red["temperature"], 0.2);
        assert_eq!(red["headers"]["Authorization"], REDACTED);
        assert_eq!(
            scrub("bad key sk-123456!", &["sk-123456".into()]),
            "bad key [redacted]!"
        );
    }
}
