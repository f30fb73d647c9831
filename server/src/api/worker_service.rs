//! WorkerService: a worker's session over one bidirectional stream, and
//! the listing of connected workers. The session only translates between
//! the wire and the engine's worker hub, which owns queues and leases.

use super::convert;
use crate::engine::Engine;
use crate::engine::workers::{self, Hello, Report, TaskFailure, TaskOutputs, ToWorker};
use crate::error::EngineError;
use crate::model::{Micros, Usage};
use futures::Stream;
use retake::v1 as pb;
use retake::v1::worker_service_server::WorkerService;
use std::pin::Pin;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

pub struct WorkerApi {
    pub engine: Engine,
}

type ToWorkerStream = Pin<Box<dyn Stream<Item = Result<pb::WorkResponse, Status>> + Send>>;

fn micros(t: SystemTime) -> Micros {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or_default()
}

fn message(kind: pb::work_response::Kind) -> Result<pb::WorkResponse, Status> {
    Ok(pb::WorkResponse { kind: Some(kind) })
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    type WorkStream = ToWorkerStream;

    async fn work(
        &self,
        req: Request<Streaming<pb::WorkRequest>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut incoming = req.into_inner();
        let hello = match incoming.message().await? {
            Some(pb::WorkRequest {
                kind: Some(pb::work_request::Kind::Hello(hello)),
            }) => hello,
            Some(_) => {
                return Err(Status::from(EngineError::invalid_argument(
                    "a worker's first message must be a hello naming the agents it serves",
                )));
            }
            None => {
                return Err(Status::from(EngineError::invalid_argument(
                    "the stream ended before the worker's hello",
                )));
            }
        };
        let concurrency = u32::try_from(hello.concurrency).map_err(|_| {
            Status::from(EngineError::invalid_argument(format!(
                "concurrency {} is negative; give the number of tasks the worker takes at once (0 means 1)",
                hello.concurrency
            )))
        })?;
        let hub = self.engine.workers().clone();
        let (welcome, mut tasks) = hub.connect(Hello {
            name: hello.name,
            agents: hello.agents,
            concurrency,
            peer,
        })?;
        tracing::info!(worker = %welcome.name, id = %welcome.worker_id, "worker connected");
        let worker_id = welcome.worker_id.clone();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let _ = out_tx.send(message(pb::work_response::Kind::Welcome(
            pb::WorkerWelcome {
                worker_id: welcome.worker_id,
                name: welcome.name.clone(),
                lease_ms: welcome.lease.as_millis() as i64,
                heartbeat_interval_ms: welcome.heartbeat.as_millis() as i64,
            },
        )));
        // Tasks and cancellations from the hub go out as they come.
        let forward = out_tx.clone();
        tokio::spawn(async move {
            while let Some(next) = tasks.recv().await {
                if forward.send(message(to_worker(next))).is_err() {
                    break;
                }
            }
        });
        // What the worker sends is reported to the hub until the stream
        // ends; then the session is over and its tasks keep their leases.
        let name = welcome.name;
        let shutdown = self.engine.shutting_down();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = incoming.message() => next,
                    // The server stops: the worker reconnects (to it once
                    // it is back, or to another); its tasks keep their
                    // leases meanwhile.
                    _ = shutdown.cancelled() => {
                        let _ = out_tx.send(Err(Status::from(EngineError::unavailable(
                            "the server is shutting down; reconnect",
                        ))));
                        break;
                    }
                };
                let Ok(Some(msg)) = next else { break };
                let Some(kind) = msg.kind else { continue };
                let refused = match kind {
                    pb::work_request::Kind::Hello(_) => {
                        let _ = out_tx.send(Err(Status::from(EngineError::invalid_argument(
                            "a worker says hello once, first",
                        ))));
                        break;
                    }
                    pb::work_request::Kind::Heartbeat(_) => {
                        hub.heard_from(&worker_id);
                        None
                    }
                    pb::work_request::Kind::Delta(d) => hub
                        .report(&worker_id, &d.task_id, Report::Delta(d.text))
                        .err()
                        .map(|why| (d.task_id, why)),
                    pb::work_request::Kind::Progress(p) => {
                        let report = Report::Progress {
                            message: p.message,
                            fraction: p.fraction,
                        };
                        hub.report(&worker_id, &p.task_id, report)
                            .err()
                            .map(|why| (p.task_id, why))
                    }
                    pb::work_request::Kind::Result(r) => {
                        let result = match r.outcome {
                            Some(pb::task_result::Outcome::Outputs(o)) => Ok(outputs(o)),
                            Some(pb::task_result::Outcome::Failure(f)) => Err(TaskFailure {
                                message: f.message,
                                details: f.details,
                                permanent: f.permanent,
                            }),
                            None => Err(TaskFailure {
                                message:
                                    "the worker sent a result with neither outputs nor a failure"
                                        .into(),
                                details: String::new(),
                                permanent: true,
                            }),
                        };
                        hub.report(&worker_id, &r.task_id, Report::Finished(result))
                            .err()
                            .map(|why| (r.task_id, why))
                    }
                };
                if let Some((task_id, reason)) = refused {
                    let _ =
                        out_tx.send(message(pb::work_response::Kind::Refused(pb::TaskRefused {
                            task_id,
                            reason,
                        })));
                }
            }
            hub.disconnect(&worker_id);
            tracing::info!(worker = %name, id = %worker_id, "worker disconnected");
        });
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self
            .engine
            .workers()
            .workers()
            .into_iter()
            .map(|w| pb::Worker {
                worker_id: w.worker_id,
                name: w.name,
                agents: w.agents,
                concurrency: w.concurrency as i32,
                connect_time: convert::timestamp(Some(micros(w.connected_at))),
                peer: w.peer,
                tasks: w
                    .tasks
                    .into_iter()
                    .map(|t| pb::WorkerTask {
                        task_id: t.task_id,
                        run_id: t.run_id,
                        node_id: t.node_id,
                        attempt: t.attempt as i32,
                        start_time: convert::timestamp(Some(micros(t.since))),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }
}

fn to_worker(next: ToWorker) -> pb::work_response::Kind {
    match next {
        ToWorker::Task {
            task_id,
            spec,
            deadline,
        } => pb::work_response::Kind::Task(pb::Task {
            task_id,
            agent: spec.agent.clone(),
            run_id: spec.run_id.clone(),
            node_id: spec.node_id.clone(),
            node_execution_id: spec.node_execution_id.clone(),
            attempt: spec.attempt as i32,
            inputs_json: spec.inputs_json.clone(),
            config_json: spec.config_json.clone(),
            inputs: convert::json_struct(&spec.inputs_json),
            config: convert::json_struct(&spec.config_json),
            prompt: spec.prompt.clone(),
            output_names: spec.output_names.clone(),
            deadline: deadline.and_then(|d| convert::timestamp(Some(micros(d)))),
            upstream: spec
                .upstream
                .iter()
                .flat_map(|(node, outs)| {
                    outs.iter().map(move |o| pb::UpstreamOutput {
                        node_id: node.clone(),
                        name: o.name.clone(),
                        media_type: o.media_type.clone(),
                        content: o.content.to_string(),
                    })
                })
                .collect(),
        }),
        ToWorker::Cancelled { task_id, reason } => {
            pb::work_response::Kind::Cancelled(pb::TaskCancelled { task_id, reason })
        }
    }
}

fn outputs(o: pb::TaskOutputs) -> TaskOutputs {
    let mut outputs: Vec<(String, String)> = o.outputs.into_iter().collect();
    outputs.sort();
    TaskOutputs {
        outputs,
        media_type: o.media_type,
        model: Some(o.model).filter(|m| !m.is_empty()),
        usage: Usage {
            input_tokens: o.input_tokens,
            output_tokens: o.output_tokens,
            cost_usd: o.cost_usd,
        },
    }
}

// The hub's bound, in the contract's words.
const _: () = assert!(workers::MAX_CONCURRENCY <= i32::MAX as u32);
