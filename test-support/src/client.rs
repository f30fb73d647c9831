//! The generated clients of one server, connected, with the calls tests
//! make most. Each helper panics on an error status: a test that expects
//! one calls the generated client (`runs`, `artifacts`, `workflows`).

use retake::v1 as pb;
use retake::v1::artifact_service_client::ArtifactServiceClient;
use retake::v1::run_service_client::RunServiceClient;
use retake::v1::workflow_service_client::WorkflowServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Message limits above the server's own, so that a test can send what
/// the server must refuse and receive the largest answers it gives.
const DECODE_LIMIT: usize = 64 << 20;
const ENCODE_LIMIT: usize = 128 << 20;

#[derive(Clone)]
pub struct Client {
    pub runs: RunServiceClient<Channel>,
    pub artifacts: ArtifactServiceClient<Channel>,
    pub workflows: WorkflowServiceClient<Channel>,
}

impl Client {
    /// Connects to `url` (`http://HOST:PORT`).
    pub async fn connect(url: &str) -> Client {
        let channel = Channel::from_shared(url.to_string())
            .unwrap_or_else(|e| panic!("bad server URL {url}: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        Client::on(channel)
    }

    /// The clients over an existing channel.
    pub fn on(channel: Channel) -> Client {
        Client {
            runs: RunServiceClient::new(channel.clone())
                .max_decoding_message_size(DECODE_LIMIT)
                .max_encoding_message_size(ENCODE_LIMIT),
            artifacts: ArtifactServiceClient::new(channel.clone()),
            workflows: WorkflowServiceClient::new(channel).max_encoding_message_size(ENCODE_LIMIT),
        }
    }

    pub async fn start_run(&mut self, yaml: &str) -> pb::Run {
        self.start_run_vars(yaml, &[]).await
    }

    pub async fn start_run_vars(&mut self, yaml: &str, vars: &[(&str, &str)]) -> pb::Run {
        self.try_start_run(yaml, vars).await.expect("StartRun")
    }

    /// StartRun, for a caller that handles a refusal itself.
    pub async fn try_start_run(
        &mut self,
        yaml: &str,
        vars: &[(&str, &str)],
    ) -> Result<pb::Run, tonic::Status> {
        let req = pb::StartRunRequest {
            workflow: yaml.to_string(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: Default::default(),
            request_id: String::new(),
        };
        Ok(self
            .runs
            .start_run(req)
            .await?
            .into_inner()
            .run
            .expect("StartRun answers with the run"))
    }

    /// Every event of the run after sequence `after`, to the run's end.
    pub async fn events(&mut self, run_id: &str, after: i64) -> Vec<pb::Event> {
        let mut stream = self
            .runs
            .watch_run(pb::WatchRunRequest {
                run_id: run_id.to_string(),
                after_sequence: after,
            })
            .await
            .expect("WatchRun")
            .into_inner();
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.push(item.expect("event").event.expect("event set"));
        }
        out
    }

    /// Follows the run until its RUN_FINISHED event; returns the status it
    /// finished with.
    pub async fn watch_to_end(&mut self, run_id: &str) -> pb::RunStatus {
        let mut stream = self
            .runs
            .watch_run(pb::WatchRunRequest {
                run_id: run_id.to_string(),
                after_sequence: 0,
            })
            .await
            .expect("WatchRun")
            .into_inner();
        while let Some(item) = stream.next().await {
            let event = item.expect("event").event.expect("event set");
            if event.kind == pb::EventKind::RunFinished as i32 {
                return pb::RunStatus::try_from(event.run_status).expect("a run status");
            }
        }
        panic!("WatchRun of {run_id} ended without RUN_FINISHED")
    }

    /// Waits for the run to end (by watching it) and returns it with nodes.
    pub async fn finish(&mut self, run_id: &str) -> (pb::Run, Vec<pb::NodeExecution>) {
        self.events(run_id, 0).await;
        self.get(run_id).await
    }

    /// Starts the workflow and follows it to its end: its events, the run
    /// and its nodes.
    pub async fn run(&mut self, yaml: &str) -> (Vec<pb::Event>, pb::Run, Vec<pb::NodeExecution>) {
        let id = self.start_run(yaml).await.id;
        let events = self.events(&id, 0).await;
        let (run, nodes) = self.get(&id).await;
        (events, run, nodes)
    }

    /// The run with its nodes.
    pub async fn get(&mut self, run_id: &str) -> (pb::Run, Vec<pb::NodeExecution>) {
        let resp = self
            .runs
            .get_run(pb::GetRunRequest {
                run_id: run_id.to_string(),
                include_nodes: true,
                include_workflow: false,
            })
            .await
            .expect("GetRun")
            .into_inner();
        (resp.run.expect("GetRun answers with the run"), resp.nodes)
    }

    /// An artifact's content, as text.
    pub async fn content(&mut self, artifact_id: &str) -> String {
        let resp = self
            .artifacts
            .get_artifact(pb::GetArtifactRequest {
                artifact_id: artifact_id.to_string(),
            })
            .await
            .expect("GetArtifact")
            .into_inner();
        String::from_utf8(resp.content).expect("the artifact is text")
    }
}
