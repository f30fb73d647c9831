//! ExperimentService: experiments started, read, listed, followed and
//! cancelled over gRPC.

use super::experiment_convert as convert;
use super::paging::{self, PageTokens};
use crate::engine::Engine;
use crate::engine::experiments::ExperimentRequest;
use futures::Stream;
use retake::v1 as pb;
use retake::v1::experiment_service_server::ExperimentService;
use std::pin::Pin;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct ExperimentApi {
    pub engine: Engine,
}

const DEFAULT_PAGE: i32 = 50;
const EXPERIMENT_TOKENS: PageTokens = PageTokens {
    method: "ListExperiments",
    prefix: "experiments:",
};

/// How often a watcher looks again at an experiment this server is not
/// running (another process runs it, or it is about to be resumed).
const POLL: Duration = Duration::from_millis(500);

type ExperimentStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchExperimentResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExperimentService for ExperimentApi {
    async fn start_experiment(
        &self,
        req: Request<pb::StartExperimentRequest>,
    ) -> Result<Response<pb::StartExperimentResponse>, Status> {
        let req = req.into_inner();
        let spec = convert::spec_from(&req)?;
        let experiment = self
            .engine
            .start_experiment(ExperimentRequest {
                name: req.name,
                spec,
            })
            .await?;
        Ok(Response::new(pb::StartExperimentResponse {
            experiment: Some(convert::experiment(&experiment)),
        }))
    }

    async fn get_experiment(
        &self,
        req: Request<pb::GetExperimentRequest>,
    ) -> Result<Response<pb::GetExperimentResponse>, Status> {
        let req = req.into_inner();
        let experiment = self.engine.get_experiment(&req.experiment_id).await?;
        let comparison = if req.include_comparison {
            Some(convert::comparison(
                &self.engine.compare_experiment(&experiment).await?,
            ))
        } else {
            None
        };
        Ok(Response::new(pb::GetExperimentResponse {
            experiment: Some(convert::experiment(&experiment)),
            comparison,
        }))
    }

    async fn list_experiments(
        &self,
        req: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsResponse>, Status> {
        let req = req.into_inner();
        let limit = paging::page_size(req.page_size, DEFAULT_PAGE)?;
        let before = EXPERIMENT_TOKENS.decode(&req.page_token)?;
        let rows = self
            .engine
            .store()
            .list_experiments(limit + 1, before)
            .await?;
        let page = paging::fill(&rows, limit, |(_, e)| convert::experiment(e));
        Ok(Response::new(pb::ListExperimentsResponse {
            experiments: page.items,
            next_page_token: page
                .last
                .map(|(pk, _)| EXPERIMENT_TOKENS.encode(pk))
                .unwrap_or_default(),
        }))
    }

    type WatchExperimentStream = ExperimentStream;

    async fn watch_experiment(
        &self,
        req: Request<pb::WatchExperimentRequest>,
    ) -> Result<Response<Self::WatchExperimentStream>, Status> {
        let id = req.into_inner().experiment_id;
        let engine = self.engine.clone();
        // Fails here, before the stream, for an unknown id.
        let first = engine.get_experiment(&id).await?;
        let stream = updates(engine, first);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_experiment(
        &self,
        req: Request<pb::CancelExperimentRequest>,
    ) -> Result<Response<pb::CancelExperimentResponse>, Status> {
        let experiment = self
            .engine
            .cancel_experiment(&req.into_inner().experiment_id)
            .await?;
        Ok(Response::new(pb::CancelExperimentResponse {
            experiment: Some(convert::experiment(&experiment)),
        }))
    }
}

/// The experiment as it is, then again after every change, ending with
/// it finished (or when the server stops).
fn updates(
    engine: Engine,
    first: crate::model::Experiment,
) -> impl Stream<Item = Result<pb::WatchExperimentResponse, Status>> + Send {
    let stopping = engine.shutting_down();
    futures::stream::unfold(
        (engine, Some(first), None::<pb::Experiment>),
        move |(engine, next, last)| {
            let stopping = stopping.clone();
            async move {
                let mut current = next?;
                loop {
                    let message = convert::experiment(&current);
                    if last.as_ref() != Some(&message) {
                        let finished = current.status.is_finished();
                        let after = if finished {
                            None
                        } else {
                            Some(current.clone())
                        };
                        let reply = pb::WatchExperimentResponse {
                            experiment: Some(message.clone()),
                        };
                        return Some((Ok(reply), (engine, after, Some(message))));
                    }
                    let mut changes = engine.experiment_changes(&current.id);
                    tokio::select! {
                        _ = async {
                            match changes.as_mut() {
                                Some(rx) => { let _ = rx.changed().await; }
                                None => tokio::time::sleep(POLL).await,
                            }
                        } => {}
                        _ = stopping.cancelled() => return None,
                    }
                    current = match engine.get_experiment(&current.id).await {
                        Ok(e) => e,
                        Err(e) => return Some((Err(e.into()), (engine, None, last))),
                    };
                }
            }
        },
    )
}
