//! Shared set-up: the real engine (embedded, or served on 127.0.0.1:0) on a
//! temporary database, and small workflows written into the test's directory.
#![allow(dead_code)]

use retake::v1::{Event, EventKind};
use retake_cli::connect::{BearerAuth, Clients};
use retake_cli::follow::EventSink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Notify, oneshot};

/// The engine inside the test process, on a fresh database.
pub struct Embedded {
    pub clients: Clients,
    pub dir: tempfile::TempDir,
}

pub async fn embedded() -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let clients = Clients::embedded(&dir.path().join("retake.db"))
        .await
        .expect("embedded engine starts");
    Embedded { clients, dir }
}

/// A retake server on a loopback port, stopped when dropped.
pub struct Served {
    pub url: String,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn served(token: Option<&str>) -> Served {
    served_with(|settings| settings.auth_token = token.map(str::to_string)).await
}

/// A server with TLS on, with this PEM certificate and key; its URL is
/// `https://127.0.0.1:PORT`.
pub async fn served_tls(cert: &Path, key: &Path) -> Served {
    let mut served = served_with(|settings| {
        settings.tls_cert = Some(cert.to_path_buf());
        settings.tls_key = Some(key.to_path_buf());
    })
    .await;
    served.url = served.url.replacen("http://", "https://", 1);
    served
}

/// A server with settings of the test's choosing.
pub async fn served_with(configure: impl FnOnce(&mut retake_server::Settings)) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = retake_server::Settings::new(dir.path().join("retake.db"));
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(retake_server::serve(settings, listener, async {
        let _ = stopped.await;
    }));
    Served {
        url: format!("http://{addr}"),
        dir,
        stop: Some(stop),
    }
}

impl Served {
    pub async fn clients(&self, token: Option<&str>) -> Clients {
        Clients::remote(&self.url, token, None)
            .await
            .expect("server reachable")
    }
}

/// Writes `content` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, content).unwrap();
    path
}

/// fetch -> transform -> summarize -> publish, all local agents.
pub const PIPELINE: &str = r#"name: report-pipeline
description: Fetch, transform, summarize, publish
nodes:
  fetch:
    agent: local://echo
    inputs: {topic: "${user.topic}"}
    outputs: [result]
  transform:
    agent: local://mock
    system_prompt: "Extract the key facts."
    inputs: {data: "${fetch.result}"}
    outputs: [result]
    depends_on: [fetch]
    config: {response: "facts v1"}
  summarize:
    agent: local://mock
    inputs: {facts: "${transform.result}"}
    outputs: [result]
    depends_on: [transform]
    config: {response: "summary v1"}
  publish:
    agent: local://echo
    inputs: {report: "${summarize.result}"}
    outputs: [result]
    depends_on: [summarize]
"#;

/// fetch -> transform (fails) -> publish (skipped).
pub const FAILING: &str = r#"name: failing
nodes:
  fetch:
    agent: local://echo
    inputs: {topic: "x"}
    outputs: [result]
  transform:
    agent: local://fail
    config: {message: "boom"}
    inputs: {data: "${fetch.result}"}
    outputs: [result]
    depends_on: [fetch]
  publish:
    agent: local://echo
    inputs: {data: "${transform.result}"}
    outputs: [result]
    depends_on: [transform]
"#;

/// One node that sleeps far longer than any test waits.
pub const SLOW: &str = r#"name: slow
nodes:
  nap:
    agent: local://sleep
    config: {ms: 600000}
    outputs: [result]
  after:
    agent: local://echo
    outputs: [result]
    depends_on: [nap]
"#;

/// Keeps the events and fires `notify` when a node starts: a Ctrl-C at a
/// known point of the run, with no timing involved.
pub struct InterruptOnStart {
    pub notify: Arc<Notify>,
    pub events: Vec<Event>,
}

impl EventSink for InterruptOnStart {
    fn on_event(&mut self, event: &Event) {
        self.events.push(event.clone());
        if event.kind() == EventKind::NodeStarted {
            self.notify.notify_one();
        }
    }
}

/// The kinds of `events` for node `node`.
pub fn node_kinds(events: &[Event], node: &str) -> Vec<EventKind> {
    events
        .iter()
        .filter(|e| e.node_id == node)
        .map(|e| e.kind())
        .collect()
}

/// Clients that never cancel on interrupt (as with a server).
pub fn no_auth() -> BearerAuth {
    BearerAuth::default()
}
