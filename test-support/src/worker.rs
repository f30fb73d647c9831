//! A worker written straight from the `.proto` (the generated tonic
//! client), for tests of `worker://` nodes: it says hello, takes tasks and
//! reports results.

use retake::v1 as pb;
use retake::v1::worker_service_client::WorkerServiceClient;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

/// A worker session: what it sends and what it receives.
pub struct Session {
    pub tx: mpsc::UnboundedSender<pb::WorkRequest>,
    pub rx: Streaming<pb::WorkResponse>,
    pub welcome: pb::WorkerWelcome,
}

pub fn req(kind: pb::work_request::Kind) -> pb::WorkRequest {
    pb::WorkRequest { kind: Some(kind) }
}

pub async fn open(
    url: &str,
    name: &str,
    agents: &[&str],
    concurrency: i32,
) -> Result<Session, tonic::Status> {
    let mut client = WorkerServiceClient::connect(url.to_string())
        .await
        .expect("connect");
    let (tx, out) = mpsc::unbounded_channel();
    tx.send(req(pb::work_request::Kind::Hello(pb::WorkerHello {
        name: name.into(),
        agents: agents.iter().map(|a| a.to_string()).collect(),
        concurrency,
    })))
    .unwrap();
    let mut rx = client
        .work(UnboundedReceiverStream::new(out))
        .await?
        .into_inner();
    match rx.message().await? {
        Some(pb::WorkResponse {
            kind: Some(pb::work_response::Kind::Welcome(welcome)),
        }) => Ok(Session { tx, rx, welcome }),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

impl Session {
    pub async fn next(&mut self) -> pb::work_response::Kind {
        let msg = tokio::time::timeout(Duration::from_secs(20), self.rx.message())
            .await
            .expect("a message within 20 s")
            .expect("the stream stays open")
            .expect("the stream stays open");
        msg.kind.expect("a message with a kind")
    }

    pub async fn task(&mut self) -> pb::Task {
        match self.next().await {
            pb::work_response::Kind::Task(t) => t,
            other => panic!("expected a task, got {other:?}"),
        }
    }

    pub fn complete(&self, task: &pb::Task, outputs: &[(&str, &str)], media_type: &str) {
        self.tx
            .send(req(pb::work_request::Kind::Result(pb::TaskResult {
                task_id: task.task_id.clone(),
                outcome: Some(pb::task_result::Outcome::Outputs(pb::TaskOutputs {
                    outputs: outputs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    media_type: media_type.into(),
                    ..Default::default()
                })),
            })))
            .unwrap();
    }

    pub fn fail(&self, task: &pb::Task, message: &str, details: &str, permanent: bool) {
        self.tx
            .send(req(pb::work_request::Kind::Result(pb::TaskResult {
                task_id: task.task_id.clone(),
                outcome: Some(pb::task_result::Outcome::Failure(pb::TaskFailure {
                    message: message.into(),
                    details: details.into(),
                    permanent,
                })),
            })))
            .unwrap();
    }
}
