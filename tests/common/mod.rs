//! Starts a real retake server on 127.0.0.1:0 with a temporary database and
//! connects the generated clients to it.
#![allow(dead_code)]

use retake::v1 as pb;
use retake::v1::artifact_service_client::ArtifactServiceClient;
use retake::v1::run_service_client::RunServiceClient;
use retake::v1::workflow_service_client::WorkflowServiceClient;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub db: PathBuf,
    pub runs: RunServiceClient<Channel>,
    pub artifacts: ArtifactServiceClient<Channel>,
    pub workflows: WorkflowServiceClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(configure: impl FnOnce(&mut retake_server::Settings)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, configure).await
}

pub async fn start_in(
    dir: tempfile::TempDir,
    configure: impl FnOnce(&mut retake_server::Settings),
) -> TestServer {
    let db = dir.path().join("retake.db");
    let mut settings = retake_server::Settings::new(&db);
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(retake_server::serve(settings, listener, async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestServer {
        addr,
        db,
        runs: RunServiceClient::new(channel.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(128 << 20),
        artifacts: ArtifactServiceClient::new(channel.clone()),
        workflows: WorkflowServiceClient::new(channel).max_encoding_message_size(128 << 20),
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

impl TestServer {
    /// Stops the server and hands back its directory, for restarts.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn start_run(&mut self, yaml: &str) -> pb::Run {
        self.start_run_vars(yaml, &[]).await
    }

    pub async fn start_run_vars(&mut self, yaml: &str, vars: &[(&str, &str)]) -> pb::Run {
        let req = pb::StartRunRequest {
            workflow: yaml.to_string(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: Default::default(),
        };
        self.runs
            .start_run(req)
            .await
            .expect("StartRun")
            .into_inner()
            .run
            .unwrap()
    }

    /// Every event of the run from `after` to its end.
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
            out.push(item.expect("event").event.unwrap());
        }
        out
    }

    /// Waits for the run to end (by watching it) and returns it with nodes.
    pub async fn finish(&mut self, run_id: &str) -> (pb::Run, Vec<pb::NodeExecution>) {
        self.events(run_id, 0).await;
        self.get(run_id).await
    }

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
        (resp.run.unwrap(), resp.nodes)
    }

    pub async fn content(&mut self, artifact_id: &str) -> String {
        let resp = self
            .artifacts
            .get_artifact(pb::GetArtifactRequest {
                artifact_id: artifact_id.to_string(),
            })
            .await
            .expect("GetArtifact")
            .into_inner();
        String::from_utf8(resp.content).unwrap()
    }
}

pub fn node<'a>(nodes: &'a [pb::NodeExecution], id: &str) -> &'a pb::NodeExecution {
    nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

pub fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("timestamp");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

pub fn status(n: &pb::NodeExecution) -> pb::NodeStatus {
    pb::NodeStatus::try_from(n.status).unwrap()
}

pub fn run_status(r: &pb::Run) -> pb::RunStatus {
    pb::RunStatus::try_from(r.status).unwrap()
}

/// A codec that sends and receives message bodies as raw bytes, for
/// requests no generated client can make (undecodable, not UTF-8).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}
