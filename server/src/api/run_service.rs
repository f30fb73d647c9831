//! retake.v1.RunService: requests in, engine calls, responses out.

use super::paging::{self, PageTokens};
use super::{convert, request_ids, run_filter};
use crate::engine::{Engine, ReplayRequest, WaitValue};
use crate::error::EngineError;
use crate::store::RunFilter;
use futures::{Stream, StreamExt};
use retake::v1 as pb;
use retake::v1::run_service_server::RunService;
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub struct RunApi {
    pub engine: Engine,
}

/// Bytes per ExportRun message: well under a client's 4 MiB default.
const EXPORT_CHUNK: usize = 1 << 20;

/// Runs a ListRuns page holds when the request does not say.
const DEFAULT_PAGE: i32 = 50;

/// ListRuns resumes before the run it ended at, by its row key.
const RUN_TOKENS: PageTokens = PageTokens {
    method: "ListRuns",
    prefix: "runs:",
};

const WAIT_TOKENS: PageTokens = PageTokens {
    method: "ListWaits",
    prefix: "waits:",
};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RunService for RunApi {
    async fn start_run(
        &self,
        req: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::StartRunResponse>, Status> {
        let req = req.into_inner();
        let sent = convert::SentWorkflow::new(req.workflow, req.files, req.variables);
        let key = request_ids::request_key(req.request_id, &sent)?;
        let run = self.engine.start_run_once(sent.source(), key).await?;
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
        let limit = paging::page_size(req.page_size, DEFAULT_PAGE)?;
        let filters = (
            req.status,
            req.workflow_name.clone(),
            req.forked_from.clone(),
            req.filter.clone(),
            req.order_by.clone(),
        );
        let past = RUN_TOKENS.decode_for(&req.page_token, &filters)?;
        let mut filter = RunFilter {
            status: convert::run_status_filter(req.status)?,
            workflow_name: Some(req.workflow_name).filter(|s| !s.is_empty()),
            forked_from: Some(req.forked_from).filter(|s| !s.is_empty()),
            oldest_first: run_filter::ascending(&req.order_by)?,
            ..RunFilter::default()
        };
        run_filter::apply(&req.filter, &mut filter)?;
        // One extra row tells whether another page exists.
        let runs = self.engine.list_runs(&filter, limit + 1, past).await?;
        let page = paging::fill(&runs, limit, convert::run_summary);
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.items,
            next_page_token: page
                .last
                .map(|run| RUN_TOKENS.encode_for(run.pk, &filters))
                .unwrap_or_default(),
        }))
    }

    async fn replay_run(
        &self,
        req: Request<pb::ReplayRunRequest>,
    ) -> Result<Response<pb::ReplayRunResponse>, Status> {
        let mut req = req.into_inner();
        #[allow(deprecated)]
        let from = replay_from(
            std::mem::take(&mut req.from),
            std::mem::take(&mut req.from_node),
        )?;
        let request = ReplayRequest {
            run: req.run_id,
            workflow: Some(req.workflow).filter(|w| !w.trim().is_empty()),
            files: req.files.into_iter().collect(),
            from,
            swaps: convert::swaps_from(req.swaps),
            overrides: convert::overrides_from(req.overrides),
            variables: req.variables.into_iter().collect(),
            allow_drift: req.allow_drift,
            item: None,
            request: None,
        };
        let request = ReplayRequest {
            request: request_ids::request_key(req.request_id, &request)?,
            ..request
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
            Status::from(
                EngineError::invalid_argument(format!(
                    "decision {} is not a WaitDecision",
                    req.decision
                ))
                .violation("decision", "not a WaitDecision"),
            )
        })?;
        let feedback = Some(req.feedback).filter(|f| !f.is_empty());
        let value = match decision {
            pb::WaitDecision::Unspecified => {
                if feedback.is_some() {
                    return Err(Status::from(EngineError::invalid_argument(
                        "feedback goes with a decision (approve or reject)",
                    )));
                }
                WaitValue::Input(req.value)
            }
            _ if !req.value.is_empty() => {
                return Err(Status::from(EngineError::invalid_argument(
                    "give either a value (input waits) or a decision (approval waits), not both",
                )));
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

    type ExportRunStream =
        Pin<Box<dyn Stream<Item = Result<pb::ExportRunResponse, Status>> + Send>>;

    async fn export_run(
        &self,
        req: Request<pb::ExportRunRequest>,
    ) -> Result<Response<Self::ExportRunStream>, Status> {
        let req = req.into_inner();
        if req.run_id.trim().is_empty() {
            return Err(Status::from(
                EngineError::invalid_argument("run_id is required").violation("run_id", "required"),
            ));
        }
        let bundle = self.engine.export_run(&req.run_id).await?;
        let chunks: Vec<Result<pb::ExportRunResponse, Status>> = bundle
            .chunks(EXPORT_CHUNK)
            .map(|c| Ok(pb::ExportRunResponse { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn import_run(
        &self,
        req: Request<tonic::Streaming<pb::ImportRunRequest>>,
    ) -> Result<Response<pb::ImportRunResponse>, Status> {
        let mut stream = req.into_inner();
        let mut bundle = Vec::new();
        while let Some(part) = stream.message().await? {
            if bundle.len() + part.data.len() > crate::engine::bundle::MAX_BUNDLE_BYTES {
                return Err(Status::from(
                    EngineError::resource_exhausted(format!(
                        "the bundle is over {} bytes, the most an import takes",
                        crate::engine::bundle::MAX_BUNDLE_BYTES
                    ))
                    .meta("limit", crate::engine::bundle::MAX_BUNDLE_BYTES.to_string()),
                ));
            }
            bundle.extend_from_slice(&part.data);
        }
        let imported = self.engine.import_bundle(&bundle).await?;
        Ok(Response::new(pb::ImportRunResponse {
            run_id: imported.run_id,
            imported_run_ids: imported.imported,
            present_run_ids: imported.present,
        }))
    }

    async fn delete_run(
        &self,
        req: Request<pb::DeleteRunRequest>,
    ) -> Result<Response<pb::DeleteRunResponse>, Status> {
        let req = req.into_inner();
        if req.run_id.trim().is_empty() {
            return Err(Status::from(
                EngineError::invalid_argument("run_id is required").violation("run_id", "required"),
            ));
        }
        let deleted = self.engine.delete_run(&req.run_id, req.cascade).await?;
        Ok(Response::new(pb::DeleteRunResponse {
            deleted_run_ids: deleted.runs,
            deleted_experiment_ids: deleted.experiments,
            deleted_contents: deleted.contents as i64,
            deleted_content_bytes: deleted.content_bytes,
        }))
    }

    async fn list_waits(
        &self,
        req: Request<pb::ListWaitsRequest>,
    ) -> Result<Response<pb::ListWaitsResponse>, Status> {
        let req = req.into_inner();
        let mut waits = self.engine.list_waits(Some(req.run_id.as_str())).await?;
        // Node-execution ids are UUIDv7: in the order the waits began.
        waits.sort_by(|a, b| a.node_execution_id.cmp(&b.node_execution_id));
        let (waits, next_page_token) = paging::page_of_all(
            &waits,
            req.page_size,
            &req.page_token,
            &WAIT_TOKENS,
            &req.run_id,
            |w| w.node_execution_id.clone(),
            convert::wait,
        )?;
        Ok(Response::new(pb::ListWaitsResponse {
            waits,
            next_page_token,
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
            return Err(Status::from(EngineError::invalid_argument(
                "step is required: a node id or node-execution id",
            )));
        }
        let node = self.engine.node_execution(&req.run_id, &req.step).await?;
        Ok(Response::new(pb::GetNodeExecutionResponse {
            node_execution: Some(convert::node(&node)),
        }))
    }
}

/// The step a replay starts from: `from_node`, or the deprecated `from`
/// (a keyword in Python), or both when they agree.
fn replay_from(from: String, from_node: String) -> Result<Option<String>, Status> {
    let (from, from_node) = (from.trim().to_string(), from_node.trim().to_string());
    match (from.is_empty(), from_node.is_empty()) {
        (_, true) => Ok(Some(from).filter(|f| !f.is_empty())),
        (true, false) => Ok(Some(from_node)),
        (false, false) if from == from_node => Ok(Some(from_node)),
        (false, false) => Err(Status::from(EngineError::invalid_argument(format!(
            "from_node '{}' and from '{}' name different steps; set from_node only (from is deprecated)",
            crate::error::echo(&from_node),
            crate::error::echo(&from)
        ))
        .violation("from", "deprecated; names another step than from_node"))),
    }
}
