//! What an agent answers, in either protocol version: a Message or a
//! Task, their parts, and the node output made of them.

use super::super::error::quote;
use super::super::{JSON, TEXT};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Data(Value),
    File(String),
}

#[derive(Debug)]
pub struct Task {
    pub id: String,
    /// Normalised: `completed`, `input-required`, … for both versions.
    pub state: String,
    pub status_parts: Vec<Part>,
    pub artifact_parts: Vec<Part>,
    pub last_agent_parts: Vec<Part>,
}

pub enum Reply {
    Message(Vec<Part>),
    Task(Task),
}

impl Reply {
    /// A SendMessage result: `{task}` / `{message}` (1.0), or the object
    /// itself with its `kind` (0.3).
    pub fn parse(result: &Value) -> Result<Reply, String> {
        if result["task"].is_object() {
            return Ok(Reply::Task(parse_task(&result["task"])?));
        }
        if result["message"].is_object() {
            return Ok(Reply::Message(parts(&result["message"]["parts"])));
        }
        match result["kind"].as_str() {
            Some("task") => return Ok(Reply::Task(parse_task(result)?)),
            Some("message") => return Ok(Reply::Message(parts(&result["parts"]))),
            _ => {}
        }
        if result["status"].is_object() && result["id"].is_string() {
            return Ok(Reply::Task(parse_task(result)?));
        }
        if result["parts"].is_array() {
            return Ok(Reply::Message(parts(&result["parts"])));
        }
        Err(format!(
            "the A2A agent answered with neither a message nor a task: {}",
            quote(result.to_string().as_bytes())
        ))
    }
}

pub fn parse_task(t: &Value) -> Result<Task, String> {
    let id = t["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("the A2A agent returned a task without an id")?
        .to_string();
    let raw_state = t["status"]["state"].as_str().unwrap_or("");
    let state = raw_state
        .trim_start_matches("TASK_STATE_")
        .to_ascii_lowercase()
        .replace('_', "-");
    let artifact_parts = t["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| parts(&a["parts"]))
        .collect();
    let last_agent_parts = t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| matches!(m["role"].as_str(), Some("ROLE_AGENT" | "agent")))
        .map(|m| parts(&m["parts"]))
        .unwrap_or_default();
    Ok(Task {
        id,
        state,
        status_parts: parts(&t["status"]["message"]["parts"]),
        artifact_parts,
        last_agent_parts,
    })
}

fn parts(list: &Value) -> Vec<Part> {
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        let kind = p["kind"].as_str();
        if kind == Some("text") || (kind.is_none() && p.get("text").is_some()) {
            out.push(Part::Text(p["text"].as_str().unwrap_or("").to_string()));
        } else if kind == Some("data") || (kind.is_none() && p.get("data").is_some()) {
            let mut data = p["data"].clone();
            // A 0.3 agent wraps a non-object value as {"value": …}.
            if p["metadata"]["data_part_compat"] == true {
                data = data["value"].clone();
            }
            out.push(Part::Data(data));
        } else {
            let file = &p["file"];
            let name = [&p["url"], &file["uri"], &p["filename"], &file["name"]]
                .into_iter()
                .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
                .unwrap_or("unnamed file");
            out.push(Part::File(name.to_string()));
        }
    }
    out
}

/// Text and data parts, one per line; files are left out.
pub fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.clone()),
            Part::Data(d) => Some(d.to_string()),
            Part::File(_) => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The node's output from the answer's parts.
pub fn output(parts: Vec<Part>) -> Result<(String, &'static str), String> {
    let has_text = parts.iter().any(|p| matches!(p, Part::Text(_)));
    let data: Vec<&Value> = parts
        .iter()
        .filter_map(|p| if let Part::Data(d) = p { Some(d) } else { None })
        .collect();
    if !has_text && !data.is_empty() {
        let content = match data.as_slice() {
            [one] => one.to_string(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()).to_string(),
        };
        return Ok((content, JSON));
    }
    if !has_text && let Some(Part::File(name)) = parts.first() {
        return Err(format!(
            "the A2A agent answered with files only ({name}); retake keeps text and data parts"
        ));
    }
    Ok((parts_text(&parts), TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_of_both_versions() {
        let v1 = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_INPUT_REQUIRED"}}});
        let Reply::Task(t) = Reply::parse(&v1).unwrap() else {
            panic!()
        };
        assert_eq!(t.state, "input-required");
        let v03 = json!({"kind": "task", "id": "t", "status": {"state": "completed"},
            "artifacts": [{"artifactId": "a", "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"value": [1]}, "metadata": {"data_part_compat": true}}]}]});
        let Reply::Task(t) = Reply::parse(&v03).unwrap() else {
            panic!()
        };
        assert_eq!(
            t.artifact_parts,
            vec![Part::Text("hi".into()), Part::Data(json!([1]))]
        );
        let m = json!({"message": {"role": "ROLE_AGENT", "parts": [{"data": {"x": 1}}]}});
        let Reply::Message(p) = Reply::parse(&m).unwrap() else {
            panic!()
        };
        assert_eq!(output(p).unwrap(), (r#"{"x":1}"#.to_string(), JSON));
    }

    #[test]
    fn outputs_keep_text_and_data() {
        let parts = vec![
            Part::Text("a".into()),
            Part::Data(json!({"b": 2})),
            Part::File("f".into()),
        ];
        assert_eq!(output(parts).unwrap(), ("a\n{\"b\":2}".to_string(), TEXT));
        let data = vec![Part::Data(json!(1)), Part::Data(json!("x"))];
        assert_eq!(output(data).unwrap(), ("[1,\"x\"]".to_string(), JSON));
        assert!(
            output(vec![Part::File("http://f".into())])
                .unwrap_err()
                .contains("files only")
        );
        assert_eq!(output(vec![]).unwrap(), (String::new(), TEXT));
    }
}
