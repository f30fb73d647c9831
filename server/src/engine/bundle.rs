//! Run bundles (`retake export` / `retake import`, ExportRun / ImportRun):
//! a finished run as one self-contained file, to hand a run to someone
//! else's server or embedded database and replay it there.
//!
//! A bundle is JSON lines: a header naming the run and every run it holds
//! (the run and, source first, the runs it reuses outputs from: a replay
//! reads the nodes it reused from its source), then for each run its
//! record with its workflow text, its node records, artifacts and events,
//! then the contents the artifacts name (base64, by digest), and last the
//! SHA-256 of every byte before that line. Ids are kept: an imported run
//! is the same run. docs/operate.md describes the format.

use super::Engine;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::{Artifact, Event, NodeExecution, Run};
use crate::store::{NewRun, RunRef, WriteBatch, sha256_hex};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const FORMAT: &str = "retake.bundle";
pub const VERSION: u32 = 1;
/// Most bytes a bundle may take on import.
pub const MAX_BUNDLE_BYTES: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        run_id: String,
        /// Sources first, the exported run last.
        runs: Vec<String>,
    },
    Run {
        run: Box<Run>,
        workflow: String,
    },
    Node(Box<NodeExecution>),
    Artifact(Box<Artifact>),
    Event(Box<Event>),
    Content {
        sha256: String,
        data: String,
    },
    End {
        sha256: String,
    },
}

/// What an import stored and what it found already there.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    pub run_id: String,
    pub imported: Vec<String>,
    pub present: Vec<String>,
}

/// One run of a bundle, gathered.
#[derive(Default)]
struct Part {
    run: Option<(Run, String)>,
    nodes: Vec<NodeExecution>,
    artifacts: Vec<Artifact>,
    events: Vec<Event>,
}

impl Engine {
    /// The bundle of a finished run.
    pub async fn export_run(&self, run_ref: &str) -> EngineResult<Vec<u8>> {
        let store = self.store();
        let run = store.find_run(RunRef(run_ref)).await?;
        if !run.status.is_finished() {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' is {}; only a finished run can be exported",
                run.id, run.status
            ))
            .reason(Reason::RunNotFinished)
            .meta("runId", &run.id));
        }
        // The run and every source it reads reused nodes from, sources first.
        let mut chain = vec![run];
        while let Some(source) = chain
            .last()
            .and_then(|r| r.replay.as_ref())
            .map(|r| r.forked_from.clone())
        {
            if chain.iter().any(|r| r.id == source) {
                break;
            }
            chain.push(store.find_run(RunRef(&source)).await?);
        }
        chain.reverse();
        let exported = chain.last().expect("the run itself").id.clone();
        let mut out = Vec::new();
        let write = |out: &mut Vec<u8>, line: &Line| -> EngineResult<()> {
            serde_json::to_writer(&mut *out, line)?;
            out.push(b'\n');
            Ok(())
        };
        write(
            &mut out,
            &Line::Header {
                format: FORMAT.into(),
                version: VERSION,
                run_id: exported,
                runs: chain.iter().map(|r| r.id.clone()).collect(),
            },
        )?;
        let mut digests = BTreeSet::new();
        for run in &chain {
            let workflow =
                String::from_utf8(store.content(&run.workflow_sha256).await?).map_err(|_| {
                    EngineError::Internal(format!("the workflow of {} is not UTF-8", run.id))
                })?;
            write(
                &mut out,
                &Line::Run {
                    run: Box::new(run.clone()),
                    workflow,
                },
            )?;
            for node in store.nodes_of_run(run.pk).await? {
                write(&mut out, &Line::Node(Box::new(node)))?;
            }
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .artifacts_of_run(run.pk, after.as_deref(), 1000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for artifact in page {
                    digests.insert(artifact.sha256.clone());
                    write(&mut out, &Line::Artifact(Box::new(artifact)))?;
                }
            }
            let mut seq = 0;
            loop {
                let page = store.events_after(run, seq, 10_000).await?;
                let Some(last) = page.last() else { break };
                seq = last.sequence;
                for event in page {
                    write(&mut out, &Line::Event(Box::new(event)))?;
                }
            }
        }
        for sha256 in digests {
            let data =
                base64::engine::general_purpose::STANDARD.encode(store.content(&sha256).await?);
            write(&mut out, &Line::Content { sha256, data })?;
        }
        let sha256 = sha256_hex(&out);
        write(&mut out, &Line::End { sha256 })?;
        Ok(out)
    }

    /// Stores the runs of `bundle` not here yet, sources first; refuses a
    /// bundle that is damaged, before storing anything.
    pub async fn import_bundle(&self, bundle: &[u8]) -> EngineResult<Imported> {
        let (header_run, order, parts, contents) = parse(bundle)?;
        let store = self.store();
        let mut imported = Imported {
            run_id: header_run,
            ..Imported::default()
        };
        // Which runs are here already; a run's source must be here or in
        // the bundle.
        let mut here = BTreeSet::new();
        for id in &order {
            if store.find_run(RunRef(id)).await.is_ok_and(|r| &r.id == id) {
                here.insert(id.clone());
            }
        }
        for id in &order {
            let part = &parts[id];
            let (run, _) = part.run.as_ref().expect("checked in parse");
            if let Some(source) = run.replay.as_ref().map(|r| &r.forked_from)
                && !order.contains(source)
                && !here.contains(source)
            {
                return Err(bad(format!(
                    "run {id} is a replay of {source}, which is neither in the bundle nor here"
                )));
            }
        }
        for id in order {
            if here.contains(&id) {
                imported.present.push(id);
                continue;
            }
            let part = &parts[&id];
            let (run, workflow) = part.run.clone().expect("checked in parse");
            let mut then = WriteBatch {
                run: Some(run.clone()),
                nodes: part.nodes.clone(),
                ..WriteBatch::default()
            };
            let mut named = BTreeSet::new();
            for artifact in &part.artifacts {
                if named.insert(artifact.sha256.clone()) {
                    then.contents
                        .push((artifact.sha256.clone(), contents[&artifact.sha256].clone()));
                }
                then.artifacts.push((0, None, artifact.clone()));
            }
            then.events = part.events.iter().map(|e| (0, e.clone())).collect();
            store
                .insert_run(NewRun {
                    run,
                    workflow,
                    nodes: part.nodes.clone(),
                    then,
                    // Finished: no server executes it.
                    claimed: false,
                    request: None,
                })
                .await?;
            imported.imported.push(id);
        }
        Ok(imported)
    }
}

fn bad(why: String) -> EngineError {
    EngineError::invalid_argument(format!(
        "not a usable run bundle: {why}; nothing was stored"
    ))
    .violation("data", "a bundle retake export wrote, whole")
}

type Parsed = (
    String,
    Vec<String>,
    BTreeMap<String, Part>,
    BTreeMap<String, Arc<[u8]>>,
);

/// Reads and checks a whole bundle: its digest, its format, and that
/// every record belongs to a run it names and every artifact's content is
/// there and is what its digest says.
fn parse(bundle: &[u8]) -> EngineResult<Parsed> {
    let body = bundle.strip_suffix(b"\n").unwrap_or(bundle);
    let (before_end, end_line) = match body.iter().rposition(|&b| b == b'\n') {
        Some(at) => (&bundle[..=at], &body[at + 1..]),
        None => return Err(bad("it has no end line (cut short?)".into())),
    };
    match serde_json::from_slice::<Line>(end_line) {
        Ok(Line::End { sha256 }) if sha256 == sha256_hex(before_end) => {}
        Ok(Line::End { .. }) => {
            return Err(bad("its digest does not match its content (damaged)".into()));
        }
        _ => return Err(bad("it has no end line (cut short?)".into())),
    }
    let mut lines = before_end.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let header = lines.next().map(serde_json::from_slice::<Line>);
    let (run_id, order) = match header {
        Some(Ok(Line::Header {
            format,
            version,
            run_id,
            runs,
        })) if format == FORMAT => {
            if version > VERSION {
                return Err(bad(format!(
                    "it is version {version} of the format; this server reads up to {VERSION}"
                )));
            }
            (run_id, runs)
        }
        _ => return Err(bad(format!("it does not start with a {FORMAT} header"))),
    };
    if !order.contains(&run_id) {
        return Err(bad(format!(
            "its header names run {run_id} but not among its runs"
        )));
    }
    let mut parts: BTreeMap<String, Part> = order
        .iter()
        .map(|id| (id.clone(), Part::default()))
        .collect();
    let mut contents = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let line: Line = serde_json::from_slice(line)
            .map_err(|e| bad(format!("line {} is not a bundle record ({e})", n + 2)))?;
        match line {
            Line::Run { run, workflow } => {
                if sha256_hex(workflow.as_bytes()) != run.workflow_sha256 {
                    return Err(bad(format!(
                        "the workflow of run {} does not match its digest",
                        run.id
                    )));
                }
                let id = run.id.clone();
                part(&mut parts, &id)?.run = Some((*run, workflow));
            }
            Line::Node(node) => {
                let id = node.run_id.clone();
                part(&mut parts, &id)?.nodes.push(*node);
            }
            Line::Artifact(artifact) => {
                let id = artifact.run_id.clone();
                part(&mut parts, &id)?.artifacts.push(*artifact);
            }
            Line::Event(event) => {
                let id = event.run_id.clone();
                part(&mut parts, &id)?.events.push(*event);
            }
            Line::Content { sha256, data } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| bad(format!("the content {sha256} is not base64")))?;
                if sha256_hex(&bytes) != sha256 {
                    return Err(bad(format!(
                        "the content {sha256} does not match its digest"
                    )));
                }
                contents.insert(sha256, Arc::<[u8]>::from(bytes));
            }
            Line::Header { .. } | Line::End { .. } => {
                return Err(bad(format!("line {} repeats a header or an end", n + 2)));
            }
        }
    }
    for (id, part) in &parts {
        if part.run.is_none() {
            return Err(bad(format!("it names run {id} but holds no record of it")));
        }
        if let Some(a) = part
            .artifacts
            .iter()
            .find(|a| !contents.contains_key(&a.sha256))
        {
            return Err(bad(format!("the content of artifact {} is missing", a.id)));
        }
    }
    Ok((run_id, order, parts, contents))
}

/// The part of run `id`, which the header must name.
fn part<'a>(parts: &'a mut BTreeMap<String, Part>, id: &str) -> EngineResult<&'a mut Part> {
    parts.get_mut(id).ok_or_else(|| {
        bad(format!(
            "a record of run {id}, which the header does not name"
        ))
    })
}
