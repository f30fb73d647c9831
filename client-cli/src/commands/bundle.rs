//! `retake export RUN -o FILE` and `retake import FILE`: a run as a bundle
//! file, to hand to another server or embedded database (ExportRun and
//! ImportRun; the format is the server's, docs/operate.md).

use crate::cli::{ExportArgs, ImportArgs};
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{Output, Style};
use retake::v1::{ExportRunRequest, ImportRunRequest};
use std::io::Write;

/// Bytes per ImportRun message.
const CHUNK: usize = 1 << 20;

/// What `retake export` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub run_id: String,
    pub file: String,
    pub bytes: u64,
}

/// `retake export`: the bundle goes to a file beside the target and is
/// renamed into place once whole, so a failed export leaves no partial file.
pub async fn export(clients: &Clients, args: &ExportArgs) -> CliResult<Exported> {
    let mut runs = clients.runs.clone();
    let mut stream = runs
        .export_run(ExportRunRequest {
            run_id: args.run_id.clone(),
        })
        .await?
        .into_inner();
    let dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let shown = args.output.display().to_string();
    let cannot = |e: std::io::Error| CliError::failed(format!("cannot write {shown}: {e}"));
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(cannot)?;
    let mut bytes = 0u64;
    let mut first = Vec::new();
    while let Some(part) = stream.message().await? {
        if first.len() < 4096 {
            first.extend_from_slice(&part.data[..part.data.len().min(4096)]);
        }
        bytes += part.data.len() as u64;
        file.write_all(&part.data).map_err(cannot)?;
    }
    file.as_file().sync_all().map_err(cannot)?;
    file.persist(&args.output).map_err(|e| cannot(e.error))?;
    let run_id = header_run(&first).unwrap_or_else(|| args.run_id.clone());
    Ok(Exported {
        run_id,
        file: shown,
        bytes,
    })
}

/// The run a bundle's header names.
fn header_run(start: &[u8]) -> Option<String> {
    let line = start.split(|&b| b == b'\n').next()?;
    let header: serde_json::Value = serde_json::from_slice(line).ok()?;
    header["header"]["run_id"].as_str().map(str::to_string)
}

impl Output for Exported {
    fn text(&self, _style: Style) -> String {
        format!(
            "Exported run {} to {} ({} bytes)\n",
            self.run_id, self.file, self.bytes
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"run_id": self.run_id, "file": self.file, "bytes": self.bytes})
    }
}

/// What `retake import` stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub run_id: String,
    pub imported: Vec<String>,
    pub present: Vec<String>,
}

/// `retake import FILE`.
pub async fn import(clients: &Clients, args: &ImportArgs) -> CliResult<Imported> {
    let data = std::fs::read(&args.file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.file.display())))?;
    let parts: Vec<ImportRunRequest> = data
        .chunks(CHUNK)
        .map(|c| ImportRunRequest { data: c.to_vec() })
        .collect();
    let mut runs = clients.runs.clone();
    let resp = runs
        .import_run(tokio_stream::iter(parts))
        .await?
        .into_inner();
    Ok(Imported {
        run_id: resp.run_id,
        imported: resp.imported_run_ids,
        present: resp.present_run_ids,
    })
}

impl Output for Imported {
    fn text(&self, _style: Style) -> String {
        let mut text = String::new();
        for id in &self.imported {
            text.push_str(&format!("Imported run {id}\n"));
        }
        for id in &self.present {
            text.push_str(&format!("Run {id} is here already; left as it is\n"));
        }
        text.push_str(&format!(
            "Replay it with: retake replay {} --from STEP\n",
            self.run_id
        ));
        text
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.run_id,
            "imported_run_ids": self.imported,
            "present_run_ids": self.present,
        })
    }
}
