//! A node's config as its agent receives it: `${user.*}` and `${env.*}`
//! resolved, and the rules on server secrets enforced at the last moment,
//! when the values exist. `${env.NAME}` is a credential taken from the
//! server's environment: it may stand only in a credential key, name only
//! variables the operator allows, and travel only to the provider's own
//! endpoint or a host the operator allows.

use super::agents::{self, CredentialDestination};
use super::secrets;
use super::template::{self, Ref};
use crate::settings::EnvPolicy;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The outcome of resolving a node's config.
pub struct ResolvedConfig {
    /// What the agent receives. Never stored.
    pub config: Map<String, Value>,
    /// Secret values to scrub from anything the agent says.
    pub secrets: Vec<String>,
    /// Why the node cannot run with this config; retrying cannot help.
    pub error: Option<String>,
}

pub fn resolve(
    agent: &str,
    config: &Map<String, Value>,
    variables: &BTreeMap<String, String>,
    policy: Option<&EnvPolicy>,
) -> ResolvedConfig {
    let mut walk = Walk {
        variables,
        policy,
        secrets: Vec::new(),
        from_env: Vec::new(),
        error: None,
    };
    let resolved: Map<String, Value> = config
        .iter()
        .map(|(k, v)| (k.clone(), walk.value(v, k)))
        .collect();
    let mut error = walk.error;
    if error.is_none() && !walk.from_env.is_empty() {
        error = check_destination(agent, &resolved, policy, &walk.from_env);
    }
    ResolvedConfig {
        config: resolved,
        secrets: walk.secrets,
        error,
    }
}

/// A server secret goes only to its provider's default endpoint or to a
/// host the operator allows, so a workflow cannot send it elsewhere.
fn check_destination(
    agent: &str,
    config: &Map<String, Value>,
    policy: Option<&EnvPolicy>,
    from_env: &[(String, String)],
) -> Option<String> {
    let policy = policy?;
    let CredentialDestination::Host(host) = agents::credential_destination(agent, config) else {
        return None;
    };
    if policy.allows_host(&host) {
        return None;
    }
    let (key, var) = &from_env[0];
    Some(format!(
        "config.{key} takes ${{env.{var}}} from the server's environment, which is sent only to the provider's own endpoint \
         or to hosts the server allows (retake-server --allow-secret-host); '{host}' is not one of them"
    ))
}

struct Walk<'a> {
    variables: &'a BTreeMap<String, String>,
    policy: Option<&'a EnvPolicy>,
    secrets: Vec<String>,
    /// (config key, variable) of every value taken from the environment.
    from_env: Vec<(String, String)>,
    error: Option<String>,
}

impl Walk<'_> {
    fn value(&mut self, v: &Value, key: &str) -> Value {
        match v {
            Value::String(s) if secrets::is_secret_key(key) && s == secrets::REDACTED => {
                self.error.get_or_insert(format!(
                    "config.{key} was written literally in the workflow; literal credentials are never stored, so it is \
                     gone after a server restart and in replays. Pass it as \"${{env.NAME}}\" with NAME set in the \
                     server's environment"
                ));
                Value::String(String::new())
            }
            Value::String(s) if s.contains("${") => {
                let out = self.render(s, key);
                if secrets::is_secret_key(key) {
                    self.secrets.push(out.clone());
                }
                Value::String(out)
            }
            Value::String(s) => {
                if secrets::is_secret_key(key) {
                    self.secrets.push(s.clone());
                }
                v.clone()
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(x, k)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|x| self.value(x, key)).collect()),
            other => other.clone(),
        }
    }

    fn render(&mut self, text: &str, key: &str) -> String {
        let mut out = String::new();
        for seg in template::parse(text).unwrap_or_default() {
            match seg {
                template::Segment::Text(t) => out.push_str(&t),
                template::Segment::Ref(Ref::Env(name)) => {
                    if let Some(value) = self.env(&name, key) {
                        self.secrets.push(value.clone());
                        self.from_env.push((key.to_string(), name));
                        out.push_str(&value);
                    }
                }
                template::Segment::Ref(Ref::User(name)) => {
                    if let Some(value) = self.variables.get(&name) {
                        out.push_str(value);
                    }
                }
                // Validation refuses output references in config.
                template::Segment::Ref(Ref::Output { .. }) => {}
            }
        }
        out
    }

    /// The value of `${env.NAME}` in config key `key`, if the rules allow.
    fn env(&mut self, name: &str, key: &str) -> Option<String> {
        let refused = if !secrets::is_secret_key(key) {
            Some(format!(
                "config.{key} uses ${{env.{name}}}, but the server's environment may be read only in credential keys (api_key, token, …)"
            ))
        } else if self.policy.is_some_and(|p| !p.allows_var(name)) {
            Some(format!(
                "config.{key} uses ${{env.{name}}}, which this server does not let workflows read (retake-server --allow-env)"
            ))
        } else {
            None
        };
        if let Some(message) = refused {
            self.error.get_or_insert(message);
            return None;
        }
        match std::env::var(name) {
            Ok(value) => Some(value),
            Err(_) => {
                self.error.get_or_insert(format!(
                    "config.{key} uses ${{env.{name}}} but {name} is not set in the server's environment"
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn env_outside_credential_keys_is_refused() {
        // SAFETY: tests in this module set distinct variables.
        unsafe { std::env::set_var("RETAKE_SECRET_CFG_A", "s3cret-value") };
        let c = config(json!({"response": "${env.RETAKE_SECRET_CFG_A}"}));
        let r = resolve("local://mock", &c, &BTreeMap::new(), None);
        assert!(r.error.unwrap().contains("only in credential keys"));
        assert_eq!(r.config["response"], "");
    }

    #[test]
    fn policy_limits_variables_and_hosts() {
        unsafe { std::env::set_var("RETAKE_SECRET_CFG_B", "s3cret-value") };
        unsafe { std::env::set_var("CFG_NOT_ALLOWED", "x") };
        let policy = EnvPolicy::default();
        let c = config(json!({"api_key": "${env.CFG_NOT_ALLOWED}"}));
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), Some(&policy));
        assert!(r.error.unwrap().contains("--allow-env"));

        let c = config(json!({"api_key": "${env.RETAKE_SECRET_CFG_B}"}));
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), Some(&policy));
        assert!(r.error.is_none());
        assert_eq!(r.config["api_key"], "s3cret-value");

        let c = config(
            json!({"api_key": "${env.RETAKE_SECRET_CFG_B}", "api_base": "http://evil.example:8080/v1"}),
        );
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), Some(&policy));
        assert!(r.error.unwrap().contains("'evil.example:8080'"));
        let r = resolve(
            "a2a://https://evil.example/agent",
            &config(json!({"api_key": "${env.RETAKE_SECRET_CFG_B}"})),
            &BTreeMap::new(),
            Some(&policy),
        );
        assert!(r.error.unwrap().contains("'evil.example'"));

        let allowing = EnvPolicy {
            secret_hosts: vec!["evil.example".into()],
            ..EnvPolicy::default()
        };
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), Some(&allowing));
        assert!(r.error.is_none());
        // The user's own engine (no policy) sends the user's own keys anywhere.
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), None);
        assert!(r.error.is_none());
    }

    #[test]
    fn a_redacted_literal_says_how_to_pass_the_key() {
        let c = config(json!({"api_key": secrets::REDACTED}));
        let r = resolve("llm://openai/gpt-4o", &c, &BTreeMap::new(), None);
        assert!(r.error.unwrap().contains("${env.NAME}"));
    }
}
