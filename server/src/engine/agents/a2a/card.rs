//! Discovery: the agent card, and the JSON-RPC interface it offers.

use super::super::error::{AgentError, fail, quote, read_limited};
use super::super::retry_after::retry_after;
use super::super::{describe_http_error, http_client};
use super::MAX_BODY;
use super::rpc::{Endpoint, Version};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde_json::Value;

const CARD_PATH: &str = ".well-known/agent-card.json";
const LEGACY_CARD_PATH: &str = ".well-known/agent.json";

/// The card at `base` (a URL ending in `.json`), else at its well-known
/// paths, newest first; with the URL it was read from.
pub async fn fetch(base: &str, headers: &HeaderMap) -> Result<(String, Value), AgentError> {
    let candidates = if base.ends_with(".json") {
        vec![base.to_string()]
    } else {
        let b = base.trim_end_matches('/');
        vec![
            format!("{b}/{CARD_PATH}"),
            format!("{b}/{LEGACY_CARD_PATH}"),
        ]
    };
    let mut misses = Vec::new();
    for url in &candidates {
        let response = http_client()
            .get(url)
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| {
                AgentError::transient(format!(
                    "cannot reach the A2A agent at {url}: {}",
                    describe_http_error(&e.without_url())
                ))
            })?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            misses.push(format!("{url} ({status})"));
            continue;
        }
        let wait = retry_after(response.headers());
        let body = read_limited(response, MAX_BODY).await?;
        if !status.is_success() {
            return Err(AgentError::of_status(
                status,
                format!(
                    "the A2A agent card at {url} could not be read: {status}: {}",
                    quote(&body)
                ),
            )
            .with_retry_after(wait));
        }
        let card: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the A2A agent card at {url} is not JSON: {e}"))?;
        if !card.is_object() {
            return fail(format!("the A2A agent card at {url} is not a JSON object"));
        }
        return Ok((url.clone(), card));
    }
    Err(AgentError::configuration(format!(
        "no A2A agent card found: {}",
        misses.join(", ")
    )))
}

/// The JSON-RPC interface to talk to, preferring protocol 1.x over 0.3.
pub fn choose_endpoint(card: &Value, card_url: &str) -> Result<Endpoint, String> {
    let mut offered = Vec::new();
    let mut candidates: Vec<(String, Version)> = Vec::new();
    let mut consider = |url: Option<&str>, binding: Option<&str>, version: &str| {
        let binding = binding.unwrap_or("JSONRPC");
        offered.push(format!("{binding} {version}"));
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return;
        };
        if !binding.eq_ignore_ascii_case("JSONRPC") {
            return;
        }
        if let Some(v) = protocol(version) {
            candidates.push((url.to_string(), v));
        }
    };
    if let Some(list) = card["supportedInterfaces"]
        .as_array()
        .filter(|l| !l.is_empty())
    {
        for i in list {
            // A 1.0 card without a version is current.
            let version = i["protocolVersion"]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or("1.0");
            consider(
                i["url"].as_str(),
                i["protocolBinding"].as_str().or(i["transport"].as_str()),
                version,
            );
        }
    } else {
        let version = card["protocolVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or("0.3.0");
        consider(
            card["url"].as_str(),
            card["preferredTransport"].as_str(),
            version,
        );
        for i in card["additionalInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            consider(i["url"].as_str(), i["transport"].as_str(), version);
        }
    }
    let Some((url, version)) = candidates
        .iter()
        .find(|(_, v)| *v == Version::V1)
        .or_else(|| candidates.first())
        .cloned()
    else {
        let offered = if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        };
        return Err(format!(
            "the A2A agent card at {card_url} offers no JSON-RPC interface of protocol 1.0 or 0.3 (it offers: {offered})"
        ));
    };
    // A relative interface URL is relative to the card.
    let url = Url::parse(card_url)
        .and_then(|base| base.join(&url))
        .map_err(|e| {
            format!("the A2A agent card at {card_url} names an invalid endpoint '{url}': {e}")
        })?;
    Ok(Endpoint {
        url: url.to_string(),
        version,
        headers: HeaderMap::new(),
    })
}

fn protocol(version: &str) -> Option<Version> {
    let mut it = version.trim().trim_start_matches('v').split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next().unwrap_or("0").parse().ok()?;
    match (major, minor) {
        (1, _) => Some(Version::V1),
        (0, m) if m >= 3 => Some(Version::V03),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cards_of_both_versions() {
        let v1 = json!({"name": "a", "supportedInterfaces": [
            {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "http://h/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]});
        let e = choose_endpoint(&v1, "http://h/.well-known/agent-card.json").unwrap();
        assert_eq!((e.url.as_str(), e.version), ("http://h/rpc", Version::V1));
        let v03 = json!({"name": "a", "url": "http://h/a2a", "protocolVersion": "0.3.0"});
        let e = choose_endpoint(&v03, "http://h/.well-known/agent.json").unwrap();
        assert_eq!((e.url.as_str(), e.version), ("http://h/a2a", Version::V03));
        let relative =
            json!({"supportedInterfaces": [{"url": "/rpc", "protocolBinding": "JSONRPC"}]});
        assert_eq!(
            choose_endpoint(&relative, "http://h:1/x/.well-known/agent-card.json")
                .unwrap()
                .url,
            "http://h:1/rpc"
        );
        let grpc = json!({"supportedInterfaces": [{"url": "http://h", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]});
        let err = choose_endpoint(&grpc, "http://h/c.json").unwrap_err();
        assert!(
            err.contains("no JSON-RPC interface") && err.contains("GRPC 1.0"),
            "{err}"
        );
    }
}
