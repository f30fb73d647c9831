//! retake.v1.RunService: requests in, engine calls, responses out.

use super::convert;
use crate::engine::{Engine, ReplayRequest, WaitValue, WorkflowSource};
use crate::error::EngineError;
use crate::model::{AgentSwap, OutputOverride};
use crate::store::RunFilter;
use base64::Engine as _;
use futures::{Stream, StreamExt};
use retake::v1 as pb;
use retake::v1::run_service_server::RunService;
use std::collections::BTreeMap;
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub struct RunApi {
    pub engine: Engine,
}

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 1000;
const MAX_PAGE_BYTES: usize = 2 << 20;

fn page_size(requested: i32, default: i32) -> Result<i64, EngineError> {
    match requested {
        0 => Ok(default as i64),
        n if n < 0 => Err(EngineError::InvalidArgument(format!(
            "page_size must not be negative, got {n}"
        ))),
        n => Ok(n.min(MAX_PAGE) as i64),
    }
}

/// Longest `OutputOverride.source` kept: it only says where a value came
/// from, so a longer one is cut rather than refused.
const MAX_SOURCE_BYTES: usize = 512;

fn clip_source(mut source: String) -> String {
    if source.len() > MAX_SOURCE_BYTES {
        let mut end = MAX_SOURCE_BYTES;
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        source.truncate(end);
        source.push('…');
    }
    source
}

fn encode_token(pk: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("runs:{pk}"))
}

fn decode_token(token: &str) -> Result<Option<i64>, EngineError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        EngineError::InvalidArgument(
            "page_token is not a token from a previous ListRuns response".into(),
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("runs:")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(bad)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RunService for RunApi {
    async fn start_run(
        &self,
        req: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::StartRunResponse>, Status> {
        let req = req.into_inner();
        let files: BTreeMap<_, _> = req.files.into_iter().collect();
        let variables: BTreeMap<_, _> = req.variables.into_iter().collect();
        let src = WorkflowSource {
            text: &req.workflow,
            files: &files,
            variables: &variables,
        };
        let run = self.engine.start_run(src).await?;
        Ok(Response::new(pb::StartRunResponse {
            run: Some(convert::run(&run)),
        }))
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let req = req.into_inner();
        let run = self.engine.get_run(&req.run_id).await?;
        let mut out = convert::run(&run);
        if req.include_workflow {
            out.workflow_content = self.engine.workflow_content(&run).await?;
        }
        let nodes = if req.include_nodes {
            self.engine
                .nodes_of_run(&run)
                .await?
                .iter()
                .map(convert::node)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::GetRunResponse {
            run: Some(out),
            nodes,
        }))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let req = req.into_inner();
        let limit = page_size(req.page_size, DEFAULT_PAGE)?;
        let before = decode_token(&req.page_token)?;
        let filter = RunFilter {
            status: convert::run_status_filter(req.status)?,
            workflow_name: Some(req.workflow_name).filter(|s| !s.is_empty()),
            forked_from: Some(req.forked_from).filter(|s| !s.is_empty()),
        };
        // One extra row tells whether another page exists.
        let runs = self.engine.list_runs(&filter, limit + 1, before).await?;
        // A page also ends before it would outgrow what a client accepts
        // by default (4 MiB), whatever the runs hold.
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut next_page_token = String::new();
        for run in &runs {
            let summary = convert::run_summary(run);
            let size = prost::Message::encoded_len(&summary) + 8;
            if page.len() as i64 == limit || (!page.is_empty() && bytes + size > MAX_PAGE_BYTES) {
                next_page_token = encode_token(runs[page.len() - 1].pk);
                break;
            }
            bytes += size;
            page.push(summary);
        }
        Ok(Response::new(pb::ListRunsResponse {
            runs: page,
            next_page_token,
        }))
    }

    async fn replay_run(
        &self,
        req: Request<pb::ReplayRunRequest>,
    ) -> Result<Response<pb::ReplayRunResponse>, Status> {
        let req = req.into_inner();
        let request = ReplayRequest {
            run: req.run_id,
            workflow: Some(req.workflow).filter(|w| !w.trim().is_empty()),
            files: req.files.into_iter().collect(),
            from: Some(req.from).filter(|f| !f.trim().is_empty()),
            swaps: req
                .swaps
                .into_iter()
                .map(|s| AgentSwap {
                    node_id: s.node_id,
                    agent: s.agent,
                })
                .collect(),
            overrides: req
                .overrides
                .into_iter()
                .map(|o| OutputOverride {
                    selector: o.selector,
                    output: o.output,
                    value: o.value,
                    source: clip_source(o.source),
                })
                .collect(),
            variables: req.variables.into_iter().collect(),
            allow_drift: req.allow_drift,
        };
        let run = self.engine.replay_run(request).await?;
        Ok(Response::new(pb::ReplayRunResponse {
            run: Some(convert::run(&run)),
        }))
    }

    async fn cancel_run(
        &self,
        req: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let run = self.engine.cancel_run(&req.into_inner().run_id).await?;
        Ok(Response::new(pb::CancelRunResponse {
            run: Some(convert::run(&run)),
        }))
    }

    type WatchRunStream = EventStream;

    async fn watch_run(
        &self,
        req: Request<pb::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let req = req.into_inner();
        let events = self.engine.watch(&req.run_id, req.after_sequence).await?;
        let stream = events.map(|e| match e {
            Ok(e) => Ok(pb::WatchRunResponse {
                event: Some(convert::event(&e)),
            }),
            Err(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resolve_wait(
        &self,
        req: Request<pb::ResolveWaitRequest>,
    ) -> Result<Response<pb::ResolveWaitResponse>, Status> {
        let req = req.into_inner();
        let decision = pb::WaitDecision::try_from(req.decision).map_err(|_| {
            Status::invalid_argument(format!("decision {} is not a WaitDecision", req.decision))
        })?;
        let feedback = Some(req.feedback).filter(|f| !f.is_empty());
        let value = match decision {
            pb::WaitDecision::Unspecified => {
                if feedback.is_some() {
                    return Err(Status::invalid_argument(
                        "feedback goes with a decision (approve or reject)",
                    ));
                }
                WaitValue::Input(req.value)
            }
            _ if !req.value.is_empty() => {
                return Err(Status::invalid_argument(
                    "give either a value (input waits) or a decision (approval waits), not both",
                ));
            }
            pb::WaitDecision::Approve => WaitValue::Decision {
                approved: true,
                feedback,
            },
            pb::WaitDecision::Reject => WaitValue::Decision {
                approved: false,
                feedback,
            },
        };
        let (wait, run) = self
            .engine
            .resolve_wait(&req.run_id, &req.node_id, value)
            .await?;
        Ok(Response::new(pb::ResolveWaitResponse {
            wait: Some(convert::wait(&wait)),
            run: Some(convert::run(&run)),
        }))
    }

    async fn list_waits(
        &self,
        req: Request<pb::ListWaitsRequest>,
    ) -> Result<Response<pb::ListWaitsResponse>, Status> {
        let req = req.into_inner();
        let waits = self.engine.list_waits(Some(req.run_id.as_str())).await?;
        Ok(Response::new(pb::ListWaitsResponse {
            waits: waits.iter().map(convert::wait).collect(),
        }))
    }

    async fn diff_runs(
        &self,
        req: Request<pb::DiffRunsRequest>,
    ) -> Result<Response<pb::DiffRunsResponse>, Status> {
        let req = req.into_inner();
        let diff = self.engine.diff_runs(&req.run_a, &req.run_b).await?;
        Ok(Response::new(convert::diff(&diff)))
    }

    async fn get_node_execution(
        &self,
        req: Request<pb::GetNodeExecutionRequest>,
    ) -> Result<Response<pb::GetNodeExecutionResponse>, Status> {
        let req = req.into_inner();
        if req.step.trim().is_empty() {
            return Err(Status::invalid_argument(
                "step is required: a node id or node-execution id",
            ));
        }
        let node = self.engine.node_execution(&req.run_id, &req.step).await?;
        Ok(Response::new(pb::GetNodeExecutionResponse {
            node_execution: Some(convert::node(&node)),
        }))
    }
}
