//! Where an `llm://PROVIDER/MODEL` request goes: the provider's API and
//! endpoint, the key it carries, and the headers that carry it.

use super::anthropic;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// The environment variables holding the known providers' keys.
pub const PROVIDER_KEY_VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY",
];

/// The host a credential in `config` would be sent to, or None when that
/// is the provider's own default endpoint.
pub fn credential_host(provider: &str, config: &Map<String, Value>) -> Option<String> {
    let base = config
        .get("api_base")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|b| !b.is_empty())?;
    let host = super::super::url_host(base);
    let default_host = defaults(provider).and_then(|(b, _, _)| super::super::url_host(b));
    match (host, default_host) {
        (Some(h), Some(d)) if h == d => None,
        (Some(h), _) => Some(h),
        (None, _) => Some(base.to_string()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Api {
    OpenAi,
    Anthropic,
}

/// A provider's defaults: base URL and the environment variable of its key
/// (`None`: it needs none).
fn defaults(provider: &str) -> Option<(&'static str, Option<&'static str>, Api)> {
    Some(match provider {
        "openai" => (
            "https://api.openai.com/v1",
            Some("OPENAI_API_KEY"),
            Api::OpenAi,
        ),
        "anthropic" => (
            "https://api.anthropic.com/v1",
            Some("ANTHROPIC_API_KEY"),
            Api::Anthropic,
        ),
        "ollama" => ("http://localhost:11434/v1", None, Api::OpenAi),
        "openrouter" => (
            "https://openrouter.ai/api/v1",
            Some("OPENROUTER_API_KEY"),
            Api::OpenAi,
        ),
        "groq" => (
            "https://api.groq.com/openai/v1",
            Some("GROQ_API_KEY"),
            Api::OpenAi,
        ),
        "together" => (
            "https://api.together.xyz/v1",
            Some("TOGETHER_API_KEY"),
            Api::OpenAi,
        ),
        "deepseek" => (
            "https://api.deepseek.com/v1",
            Some("DEEPSEEK_API_KEY"),
            Api::OpenAi,
        ),
        "mistral" => (
            "https://api.mistral.ai/v1",
            Some("MISTRAL_API_KEY"),
            Api::OpenAi,
        ),
        "vllm" => ("http://localhost:8000/v1", None, Api::OpenAi),
        _ => return None,
    })
}

/// No Debug, so that a key can never be printed.
pub struct Target {
    pub provider: String,
    pub api: Api,
    pub url: String,
    pub key: Option<String>,
}

pub fn target(provider: &str, config: &Map<String, Value>) -> Result<Target, String> {
    let api_base = match config.get("api_base") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => {
            Some(s.trim().trim_end_matches('/').to_string())
        }
        Some(other) => {
            return Err(format!(
                "config.api_base must be a URL string, got {}",
                super::kind(other)
            ));
        }
    };
    let config_key = match config.get("api_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(format!(
                "config.api_key must be a string, got {}",
                super::kind(other)
            ));
        }
    };
    let known = defaults(provider);
    let (base, api) = match (&api_base, known) {
        (Some(b), Some((_, _, api))) => (b.clone(), api),
        (Some(b), None) => (b.clone(), Api::OpenAi),
        (None, Some((b, _, api))) => (b.to_string(), api),
        (None, None) => {
            return Err(format!(
                "unknown LLM provider '{provider}': use one of openai, anthropic, ollama, openrouter, groq, together, \
                 deepseek, mistral, vllm, or set config.api_base to an OpenAI-compatible endpoint"
            ));
        }
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "config.api_base must start with http:// or https://, got '{base}'"
        ));
    }
    // The server's own key goes only to the provider's own endpoint, never
    // to an endpoint a workflow names.
    let key = match (config_key, known) {
        (Some(k), _) => Some(k),
        (None, Some((_, Some(var), _))) if api_base.is_none() => match std::env::var(var) {
            Ok(k) if !k.is_empty() => Some(k),
            _ => {
                return Err(format!(
                    "llm://{provider} needs an API key: set {var} in the server's environment, \
                     or config.api_key (e.g. api_key: \"${{env.{var}}}\")"
                ));
            }
        },
        _ => None,
    };
    let path = match api {
        Api::OpenAi => "chat/completions",
        Api::Anthropic => "messages",
    };
    Ok(Target {
        provider: provider.to_string(),
        api,
        url: format!("{base}/{path}"),
        key,
    })
}

/// The request's headers: JSON, and the key the way the API wants it.
pub fn headers(target: &Target) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let secret = |value: String| -> Result<HeaderValue, String> {
        // The message names no part of the value.
        let mut v = HeaderValue::try_from(value).map_err(|_| {
            "the API key contains characters not allowed in an HTTP header".to_string()
        })?;
        v.set_sensitive(true);
        Ok(v)
    };
    match target.api {
        Api::OpenAi => {
            if let Some(k) = &target.key {
                h.insert(
                    reqwest::header::AUTHORIZATION,
                    secret(format!("Bearer {k}"))?,
                );
            }
        }
        Api::Anthropic => {
            if let Some(k) = &target.key {
                h.insert(HeaderName::from_static("x-api-key"), secret(k.clone())?);
            }
            h.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(anthropic::VERSION),
            );
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_from_config_or_the_environment_of_the_default_endpoint() {
        let config = |v: Value| v.as_object().unwrap().clone();
        let t = target("ollama", &config(json!({}))).unwrap();
        assert_eq!(t.url, "http://localhost:11434/v1/chat/completions");
        assert!(t.key.is_none());
        let t = target(
            "anthropic",
            &config(json!({"api_key": "k-123", "api_base": "http://127.0.0.1:9/v1/"})),
        )
        .unwrap();
        assert_eq!(
            (t.url.as_str(), t.api, t.key.as_deref()),
            (
                "http://127.0.0.1:9/v1/messages",
                Api::Anthropic,
                Some("k-123")
            )
        );
        let t = target(
            "mine",
            &config(json!({"api_base": "http://127.0.0.1:9/v1"})),
        )
        .unwrap();
        assert_eq!(
            (t.url.as_str(), t.api),
            ("http://127.0.0.1:9/v1/chat/completions", Api::OpenAi)
        );
        let err = |r: Result<Target, String>| r.err().expect("an error");
        assert!(err(target("mine", &config(json!({})))).contains("unknown LLM provider 'mine'"));
        if std::env::var("DEEPSEEK_API_KEY").is_err() {
            let e = err(target("deepseek", &config(json!({}))));
            assert!(e.contains("DEEPSEEK_API_KEY"), "{e}");
        }
    }
}
