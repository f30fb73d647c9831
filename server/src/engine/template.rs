//! `${...}` references inside workflow strings: parsing them, and rendering
//! a node's inputs into JSON once its upstream artifacts exist.

use std::fmt::Write as _;

/// One `${scope.name}` reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    /// `${user.NAME}`: a run variable.
    User(String),
    /// `${env.NAME}`: a server environment variable (config only).
    Env(String),
    /// `${node.output}`: an upstream artifact.
    Output { node: String, output: String },
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::User(n) => write!(f, "${{user.{n}}}"),
            Ref::Env(n) => write!(f, "${{env.{n}}}"),
            Ref::Output { node, output } => write!(f, "${{{node}.{output}}}"),
        }
    }
}

/// What node ids, output names and the two halves of a reference may
/// contain, as messages say it.
pub const NAME_CHARS: &str = "ASCII letters (a-z, A-Z), digits, '_' and '-'";

/// Why `name` is not a valid name, with `what` naming it in the message;
/// None when it is one. Names are non-empty and use only [`NAME_CHARS`],
/// so letters such as 'é' are refused.
pub fn name_error(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} must not be empty"));
    }
    let bad = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
    Some(format!("{what} may contain only {NAME_CHARS}, not '{bad}'"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Ref(Ref),
}

/// Splits a string into literal text and references.
pub fn parse(s: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            segments.push(Segment::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated reference in \"{s}\" (missing '}}')"))?;
        segments.push(Segment::Ref(parse_ref(&after[..end])?));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_string()));
    }
    Ok(segments)
}

fn parse_ref(body: &str) -> Result<Ref, String> {
    let body = body.trim();
    let (scope, name) = body.split_once('.').ok_or_else(|| {
        format!(
            "reference ${{{body}}} must look like ${{node.output}}, ${{user.NAME}} or ${{env.NAME}}"
        )
    })?;
    if name_error("", scope).is_some() || name_error("", name).is_some() {
        return Err(format!(
            "reference ${{{body}}} must look like ${{node.output}}, ${{user.NAME}} or ${{env.NAME}}, \
             with names of {NAME_CHARS}"
        ));
    }
    Ok(match scope {
        "user" => Ref::User(name.to_string()),
        "env" => Ref::Env(name.to_string()),
        _ => Ref::Output {
            node: scope.to_string(),
            output: name.to_string(),
        },
    })
}

/// Every reference in every string of a JSON value.
pub fn refs_in_value(value: &serde_json::Value, out: &mut Vec<Ref>) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) => {
            for seg in parse(s)? {
                if let Segment::Ref(r) = seg {
                    out.push(r);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                refs_in_value(item, out)?;
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values() {
                refs_in_value(item, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// What a reference resolves to when a node runs.
pub enum Resolved<'a> {
    /// Text, quoted when embedded in JSON.
    Text(&'a str),
    /// A JSON document that is embedded as is. It is never re-parsed, so
    /// arbitrarily deep upstream documents (long echo chains) cost nothing.
    Json(&'a str),
    /// Nothing (e.g. the output of a skipped node).
    Missing,
}

/// Renders a string with its references replaced by text.
pub fn render_text<'a>(
    s: &str,
    resolve: &mut dyn FnMut(&Ref) -> Resolved<'a>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    for seg in parse(s)? {
        match seg {
            Segment::Text(t) => out.push_str(&t),
            Segment::Ref(r) => match resolve(&r) {
                Resolved::Text(t) | Resolved::Json(t) => out.push_str(t),
                Resolved::Missing => {}
            },
        }
    }
    Ok(out)
}

/// Renders a JSON value to JSON text, resolving references. A string that
/// is exactly one output reference becomes that artifact's JSON (or
/// quoted text); any other string is interpolated as text.
pub fn render_json<'a>(
    value: &serde_json::Value,
    resolve: &mut dyn FnMut(&Ref) -> Resolved<'a>,
    out: &mut String,
) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) => {
            let segments = parse(s)?;
            if let [Segment::Ref(r)] = segments.as_slice() {
                match resolve(r) {
                    Resolved::Json(doc) => out.push_str(doc),
                    Resolved::Text(t) => write_json_string(t, out),
                    Resolved::Missing => out.push_str("null"),
                }
                return Ok(());
            }
            let text = render_text(s, resolve)?;
            write_json_string(&text, out);
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_json(item, resolve, out)?;
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                render_json(item, resolve, out)?;
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
    Ok(())
}

pub fn write_json_string(s: &str, out: &mut String) {
    // serde_json's escaping, without building an intermediate Value.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_and_text() {
        let segs = parse("a ${user.topic} b ${fetch.result}").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Text("a ".into()),
                Segment::Ref(Ref::User("topic".into())),
                Segment::Text(" b ".into()),
                Segment::Ref(Ref::Output {
                    node: "fetch".into(),
                    output: "result".into()
                }),
            ]
        );
        assert!(parse("${oops").unwrap_err().contains("unterminated"));
        assert!(parse("${nodot}").unwrap_err().contains("must look like"));
    }

    #[test]
    fn whole_reference_embeds_json_without_reparsing() {
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        let value = serde_json::json!({"data": "${up.result}", "note": "from ${up.result}"});
        let mut out = String::new();
        render_json(&value, &mut |_| Resolved::Json(&deep), &mut out).unwrap();
        assert!(out.starts_with("{\"data\":[[[["));
        assert!(out.contains("\"note\":\"from [[["));
    }
}
