//! `retake artifacts list|show|lineage`: the outputs of runs and where
//! they came from.

use super::fetch::{pages, returned};
use crate::cli::{ArtifactLineageArgs, ArtifactShowArgs, ArtifactsListArgs};
use crate::connect::Clients;
use crate::error::CliResult;
use crate::render::{self, Output, Style, artifact_origin_name};
use retake::v1::{
    Artifact, ArtifactOrigin, GetArtifactLineageRequest, ListArtifactsRequest, ReadArtifactRequest,
};
use std::collections::{HashMap, HashSet};

/// An artifact's metadata as JSON.
pub fn artifact_json(a: &Artifact) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "run_id": a.run_id,
        "node_id": a.node_id,
        "node_execution_id": a.node_execution_id,
        "name": a.name,
        "media_type": a.media_type,
        "size_bytes": a.size_bytes,
        "sha256": a.sha256,
        "origin": artifact_origin_name(a.origin()),
        "derived_from": a.derived_from,
        "created_at": render::rfc3339(a.create_time.as_ref()),
    })
}

/// The artifacts of a run, reused ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactList {
    pub run_id: String,
    pub artifacts: Vec<Artifact>,
}

/// `retake artifacts list RUN_ID`.
pub async fn list(clients: &Clients, args: &ArtifactsListArgs) -> CliResult<ArtifactList> {
    let artifacts = pages(usize::MAX, |page_size, page_token| {
        let mut client = clients.artifacts.clone();
        let request = ListArtifactsRequest {
            run_id: args.run_id.clone(),
            page_size,
            page_token,
        };
        async move {
            let resp = client.list_artifacts(request).await?.into_inner();
            Ok((resp.artifacts, resp.next_page_token))
        }
    })
    .await?;
    Ok(ArtifactList {
        run_id: args.run_id.clone(),
        artifacts,
    })
}

impl Output for ArtifactList {
    fn text(&self, style: Style) -> String {
        if self.artifacts.is_empty() {
            return format!("No artifacts in run {}\n", self.run_id);
        }
        // A replay lists what it reused from earlier runs too: then say
        // which run produced each artifact, in full (run ids are
        // time-ordered, so only whole ids tell runs apart).
        let any_reused = self
            .artifacts
            .iter()
            .any(|a| a.origin() == ArtifactOrigin::Reused);
        let rows: Vec<Vec<String>> = self
            .artifacts
            .iter()
            .map(|a| {
                let mut row = vec![
                    a.id.clone(),
                    a.node_id.clone(),
                    a.name.clone(),
                    artifact_origin_name(a.origin()).to_string(),
                ];
                if any_reused {
                    row.push(a.run_id.clone());
                }
                row.push(render::bytes(a.size_bytes));
                row.push(a.media_type.clone());
                row
            })
            .collect();
        let mut header = vec!["ARTIFACT ID", "NODE", "NAME", "ORIGIN"];
        if any_reused {
            header.push("RUN");
        }
        header.extend(["SIZE", "TYPE"]);
        render::table(style, &header, &rows)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.artifacts.iter().map(artifact_json).collect())
    }
}

/// One artifact with its content.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactShow {
    pub artifact: Artifact,
    pub content: Vec<u8>,
    /// Print the content only, byte for byte.
    pub raw: bool,
}

/// `retake artifacts show ART_ID`.
pub async fn show(clients: &Clients, args: &ArtifactShowArgs) -> CliResult<ArtifactShow> {
    let (artifact, content) = fetch(clients, &args.artifact_id).await?;
    Ok(ArtifactShow {
        artifact,
        content,
        raw: args.raw,
    })
}

/// An artifact's metadata and content, read in chunks (ReadArtifact), so
/// an artifact of any size arrives whole.
pub async fn fetch(clients: &Clients, artifact_id: &str) -> CliResult<(Artifact, Vec<u8>)> {
    use tokio_stream::StreamExt;
    let mut client = clients.artifacts.clone();
    let mut chunks = client
        .read_artifact(ReadArtifactRequest {
            artifact_id: artifact_id.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let (mut artifact, mut content) = (None, Vec::new());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        artifact = artifact.or(chunk.artifact);
        content.extend_from_slice(&chunk.data);
    }
    Ok((returned(artifact, "artifact")?, content))
}

impl Output for ArtifactShow {
    fn text(&self, style: Style) -> String {
        if self.raw {
            return String::from_utf8_lossy(&self.content).into_owned();
        }
        let a = &self.artifact;
        let mut out = String::new();
        let field = |out: &mut String, k: &str, v: &str| {
            out.push_str(&format!("{} {v}\n", style.bold(&format!("{k}:"))))
        };
        field(&mut out, "Artifact", &a.id);
        field(&mut out, "Run", &a.run_id);
        field(
            &mut out,
            "Node",
            &format!("{} ({})", a.node_id, a.node_execution_id),
        );
        field(&mut out, "Name", &a.name);
        field(&mut out, "Origin", artifact_origin_name(a.origin()));
        field(&mut out, "Type", &a.media_type);
        field(&mut out, "Size", &render::bytes(a.size_bytes));
        field(&mut out, "SHA-256", &a.sha256);
        if let Some(t) = render::rfc3339(a.create_time.as_ref()) {
            field(&mut out, "Created", &t);
        }
        if !a.derived_from.is_empty() {
            field(&mut out, "Derived from", &a.derived_from.join(", "));
        }
        out.push('\n');
        match std::str::from_utf8(&self.content) {
            Ok(text) => {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            Err(_) => out.push_str(&format!(
                "({} of binary content; use --raw)\n",
                render::bytes(self.content.len() as i64)
            )),
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let mut v = artifact_json(&self.artifact);
        if let Some(obj) = v.as_object_mut() {
            let content = match std::str::from_utf8(&self.content) {
                Ok(text) => serde_json::Value::String(text.to_string()),
                Err(_) => serde_json::Value::Null,
            };
            obj.insert("content".into(), content);
        }
        v
    }
}

/// The provenance of an artifact: it, the artifacts it was derived from, and theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct Lineage {
    pub artifact_id: String,
    /// Breadth first from the artifact, with each entry's depth.
    pub entries: Vec<(i32, Artifact)>,
}

/// `retake artifacts lineage ART_ID`.
pub async fn lineage(clients: &Clients, args: &ArtifactLineageArgs) -> CliResult<Lineage> {
    let mut client = clients.artifacts.clone();
    let resp = client
        .get_artifact_lineage(GetArtifactLineageRequest {
            artifact_id: args.artifact_id.clone(),
            max_depth: args.depth.max(0),
            // Every entry in one response: a lineage is printed whole.
            page_size: 0,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    let entries: Vec<(i32, Artifact)> = resp
        .entries
        .into_iter()
        .filter_map(|e| e.artifact.map(|a| (e.depth, a)))
        .collect();
    let artifact_id = entries
        .iter()
        .find(|(d, _)| *d == 0)
        .map(|(_, a)| a.id.clone())
        .unwrap_or(args.artifact_id.clone());
    Ok(Lineage {
        artifact_id,
        entries,
    })
}

impl Lineage {
    fn label(style: Style, a: &Artifact) -> String {
        format!(
            "{}  {}.{}  {}  {}",
            a.id,
            a.node_id,
            a.name,
            style.dim(artifact_origin_name(a.origin())),
            style.dim(&a.run_id)
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        style: Style,
        by_id: &HashMap<&str, &Artifact>,
        id: &str,
        prefix: &str,
        last: bool,
        root: bool,
        shown: &mut HashSet<String>,
        out: &mut String,
    ) {
        let branch = if root {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        let Some(a) = by_id.get(id) else {
            out.push_str(&format!(
                "{prefix}{branch}{id}  {}\n",
                style.dim("(beyond --depth)")
            ));
            return;
        };
        if !shown.insert(id.to_string()) {
            out.push_str(&format!(
                "{prefix}{branch}{}  {}\n",
                a.id,
                style.dim("(shown above)")
            ));
            return;
        }
        out.push_str(&format!("{prefix}{branch}{}\n", Self::label(style, a)));
        let child_prefix = if root {
            String::new()
        } else {
            format!("{prefix}{}", if last { "   " } else { "│  " })
        };
        let n = a.derived_from.len();
        for (i, parent) in a.derived_from.iter().enumerate() {
            self.walk(
                style,
                by_id,
                parent,
                &child_prefix,
                i + 1 == n,
                false,
                shown,
                out,
            );
        }
    }
}

impl Output for Lineage {
    fn text(&self, style: Style) -> String {
        let by_id: HashMap<&str, &Artifact> = self
            .entries
            .iter()
            .map(|(_, a)| (a.id.as_str(), a))
            .collect();
        let mut out = String::new();
        let mut shown = HashSet::new();
        self.walk(
            style,
            &by_id,
            &self.artifact_id,
            "",
            true,
            true,
            &mut shown,
            &mut out,
        );
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "artifact_id": self.artifact_id,
            "entries": self.entries.iter().map(|(depth, a)| {
                let mut v = artifact_json(a);
                if let Some(o) = v.as_object_mut() {
                    o.insert("depth".into(), (*depth).into());
                }
                v
            }).collect::<Vec<_>>(),
        })
    }
}
