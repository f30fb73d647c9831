//! Keeping secrets out of everything retake stores or returns: config keys
//! that hold credentials are redacted, and resolved `${env.*}` values are
//! scrubbed from any text (errors, events) before it leaves the executor.

use serde_json::{Map, Value};

pub const REDACTED: &str = "[redacted]";

/// Config key names that hold credentials.
pub const SECRET_KEY_NAMES: &[&str] = &[
    "api_key",
    "apikey",
    "token",
    "access_token",
    "authorization",
    "auth_header",
    "password",
    "secret",
    "bearer",
];
/// Endings of config keys that hold credentials.
pub const SECRET_KEY_SUFFIXES: &[&str] = &["_key", "_secret", "_token", "_password"];

/// The credential keys in words, for messages.
pub fn secret_keys_described() -> String {
    let names = SECRET_KEY_NAMES.join(", ");
    let suffixes: Vec<String> = SECRET_KEY_SUFFIXES
        .iter()
        .map(|s| format!("*{s}"))
        .collect();
    format!("{names}, {}", suffixes.join(", "))
}

/// Config keys whose values are credentials: an explicit list of names and
/// suffixes, never a substring match (`max_tokens` is not a secret).
/// Case and `-`/`_` do not matter, so HTTP header names match too.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEY_NAMES.contains(&k.as_str()) || SECRET_KEY_SUFFIXES.iter().any(|s| k.ends_with(s))
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

/// Literal credentials written in a workflow's config, with their keys, to
/// keep out of the stored snapshot. `${env.*}` references are not secrets
/// themselves.
pub fn literal_secrets(config: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in config {
        match v {
            Value::String(s)
                if is_secret_key(k) && !s.is_empty() && !s.contains("${") && s != REDACTED =>
            {
                out.push((k.clone(), s.clone()))
            }
            Value::Object(m) => literal_secrets(m, out),
            _ => {}
        }
    }
}

/// `text` with each literal credential replaced by [`REDACTED`] on the
/// lines that name its key, which is exact however short the value; a
/// long value is also replaced wherever else it appears (a block scalar).
pub fn redact_literals(text: &str, literals: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (key, secret) in literals {
        out = out
            .split_inclusive('\n')
            .map(|line| {
                if line.contains(key.as_str()) {
                    replace_scalar(line, secret)
                } else {
                    line.to_string()
                }
            })
            .collect();
        if secret.len() >= 8 {
            out = replace_scalar(&out, secret);
        }
    }
    out
}

/// Replaces `secret` in YAML or JSON text so the result still parses to
/// the string [`REDACTED`]: inside quotes the marker goes in as it is,
/// bare it is quoted (a bare `[redacted]` would be a YAML list).
fn replace_scalar(text: &str, secret: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let before = &rest[..at];
        out.push_str(before);
        if before.ends_with(['"', '\'']) {
            out.push_str(REDACTED);
        } else {
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
        }
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
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

    #[test]
    fn redacted_snapshots_still_parse_to_the_marker() {
        let literals = [("api_key".to_string(), "k9x2".to_string())];
        assert_eq!(
            redact_literals("config: {api_key: k9x2, other: k9x2}\n", &literals),
            "config: {api_key: \"[redacted]\", other: \"[redacted]\"}\n"
        );
        assert_eq!(
            redact_literals("  api_key: \"k9x2\"\n  text: k9x2\n", &literals),
            "  api_key: \"[redacted]\"\n  text: k9x2\n"
        );
    }

    #[test]
    fn secret_keys_are_a_list_not_a_substring() {
        for key in [
            "api_key",
            "API_KEY",
            "token",
            "access_token",
            "refresh_token",
            "Authorization",
            "x-api-key",
            "password",
            "client_secret",
            "secret",
        ] {
            assert!(is_secret_key(key), "{key} is a secret key");
        }
        for key in [
            "max_tokens",
            "max_completion_tokens",
            "tokenizer",
            "temperature",
            "api_base",
            "response",
            "secretary",
        ] {
            assert!(!is_secret_key(key), "{key} is not a secret key");
        }
    }
}
