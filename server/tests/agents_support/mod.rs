//! For the remote-agent tests: fake HTTP services on 127.0.0.1:0 that
//! record what they receive and answer from a script, and a real
//! retake-server process (so its environment can hold a secret without
//! touching the test process's) driven through the generated client.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use retake::v1 as pb;
use retake::v1::artifact_service_client::ArtifactServiceClient;
use retake::v1::run_service_client::RunServiceClient;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// What a fake service received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a fake service answers.
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// `text/event-stream`: each string is written as it is, `gap` apart.
    Sse { chunks: Vec<String>, gap: Duration },
    /// Waits, then answers.
    After(Duration, Box<Reply>),
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply::Json {
            status: 200,
            headers: vec![],
            body,
        }
    }
    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Json {
            status,
            headers: vec![],
            body,
        }
    }
}

type Script = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

pub struct Fake {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    /// `script(request, n)` answers the n-th request (0-based).
    pub async fn start(script: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    at: Instant::now(),
                };
                let n = {
                    let mut all = seen.lock().unwrap();
                    all.push(rec.clone());
                    all.len() - 1
                };
                let reply = script(&rec, n);
                respond(reply).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn respond(
    reply: Reply,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Json {
                status,
                headers,
                body,
            } => {
                let mut b = axum::response::Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .header("content-type", "application/json");
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                b.body(Body::from(body.to_string())).unwrap()
            }
            Reply::Sse { chunks, gap } => {
                let stream = futures::stream::iter(chunks).then(move |c| async move {
                    tokio::time::sleep(gap).await;
                    Ok::<_, std::convert::Infallible>(Bytes::from(c))
                });
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Reply::After(wait, reply) => {
                tokio::time::sleep(wait).await;
                respond(*reply).await
            }
        }
    })
}

/// A retake-server process on 127.0.0.1:0 with its own database.
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub runs: RunServiceClient<Channel>,
    pub artifacts: ArtifactServiceClient<Channel>,
    logs: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_retake-server"));
        // The fake providers live on loopback: the operator lets server
        // secrets go there.
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--allow-secret-host",
            "127.0.0.1",
            "--db",
        ])
        .arg(dir.path().join("retake.db"))
        .env("RUST_LOG", "debug,sqlx=warn,h2=info,hyper=info,tower=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start retake-server");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(addr.contains(':'), "unexpected first line: {line}");
        let logs: Arc<Mutex<String>> = Arc::default();
        for mut stream in [
            Box::new(out) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    logs.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            child,
            dir,
            runs: RunServiceClient::new(channel.clone()),
            artifacts: ArtifactServiceClient::new(channel),
            logs,
        }
    }

    pub async fn start_run(&mut self, yaml: &str) -> String {
        let req = pb::StartRunRequest {
            workflow: yaml.to_string(),
            ..Default::default()
        };
        self.runs
            .start_run(req)
            .await
            .expect("StartRun")
            .into_inner()
            .run
            .unwrap()
            .id
    }

    /// Every event of the run, to its end.
    pub async fn events(&mut self, run_id: &str) -> Vec<pb::Event> {
        let req = pb::WatchRunRequest {
            run_id: run_id.to_string(),
            after_sequence: 0,
        };
        let mut stream = self
            .runs
            .watch_run(req)
            .await
            .expect("WatchRun")
            .into_inner();
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.push(item.expect("event").event.unwrap());
        }
        out
    }

    pub async fn get(&mut self, run_id: &str) -> (pb::Run, Vec<pb::NodeExecution>) {
        let req = pb::GetRunRequest {
            run_id: run_id.to_string(),
            include_nodes: true,
            include_workflow: true,
        };
        let resp = self.runs.get_run(req).await.expect("GetRun").into_inner();
        (resp.run.unwrap(), resp.nodes)
    }

    pub async fn content(&mut self, artifact_id: &str) -> String {
        let req = pb::GetArtifactRequest {
            artifact_id: artifact_id.to_string(),
        };
        let resp = self
            .artifacts
            .get_artifact(req)
            .await
            .expect("GetArtifact")
            .into_inner();
        String::from_utf8(resp.content).unwrap()
    }

    /// Runs the workflow to its end: its events, the run and its nodes.
    pub async fn run(&mut self, yaml: &str) -> (Vec<pb::Event>, pb::Run, Vec<pb::NodeExecution>) {
        let id = self.start_run(yaml).await;
        let events = self.events(&id).await;
        let (run, nodes) = self.get(&id).await;
        (events, run, nodes)
    }

    /// Fails if `secret` is in any answer about the run, in any database
    /// file, or in the server's logs.
    pub async fn assert_secret_absent(&mut self, run_id: &str, secret: &str) {
        let mut answers = String::new();
        let (run, nodes) = self.get(run_id).await;
        answers.push_str(&format!("{run:?}{nodes:?}"));
        answers.push_str(&format!("{:?}", self.events(run_id).await));
        let list = self
            .artifacts
            .list_artifacts(pb::ListArtifactsRequest {
                run_id: run_id.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListArtifacts")
            .into_inner();
        for a in &list.artifacts {
            answers.push_str(&self.content(&a.id).await);
        }
        answers.push_str(&format!("{list:?}"));
        let runs = self
            .runs
            .list_runs(pb::ListRunsRequest::default())
            .await
            .expect("ListRuns")
            .into_inner();
        answers.push_str(&format!("{runs:?}"));
        assert!(!answers.contains(secret), "the secret is in an RPC answer");
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is in {}",
                path.display()
            );
        }
        assert!(
            !self.logs.lock().unwrap().contains(secret),
            "the secret is in the server's logs"
        );
    }
}

pub fn node<'a>(nodes: &'a [pb::NodeExecution], id: &str) -> &'a pb::NodeExecution {
    nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

pub fn status(n: &pb::NodeExecution) -> pb::NodeStatus {
    pb::NodeStatus::try_from(n.status).unwrap()
}

pub fn deltas(events: &[pb::Event], node_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == pb::EventKind::NodeOutputDelta as i32 && e.node_id == node_id)
        .map(|e| e.delta.clone())
        .collect()
}
