//! The `retake` CLI's clients against the real engine: embedded in the
//! test process, or a server on loopback.

use crate::db_dir::DbDir;
use crate::in_process::InProcessServer;
use retake::v1::{Event, EventKind};
use retake_cli::connect::{BearerAuth, Clients};
use retake_cli::follow::EventSink;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;

/// The engine inside the test process, on a fresh database.
pub struct Embedded {
    pub clients: Clients,
    pub dir: tempfile::TempDir,
}

pub async fn embedded() -> Embedded {
    let dir = DbDir::new();
    let clients = Clients::embedded(&dir.db())
        .await
        .expect("embedded engine starts");
    Embedded {
        clients,
        dir: dir.into_temp_dir(),
    }
}

/// A server in this process, as the CLI reaches one.
pub type Served = InProcessServer;

/// A server that wants `token`, if any.
pub async fn served(token: Option<&str>) -> Served {
    served_with(|settings| settings.auth_token = token.map(str::to_string)).await
}

/// A server with TLS on, with this PEM certificate and key; its URL is
/// `https://127.0.0.1:PORT`.
pub async fn served_tls(cert: &Path, key: &Path) -> Served {
    served_with(|settings| {
        settings.tls_cert = Some(cert.to_path_buf());
        settings.tls_key = Some(key.to_path_buf());
    })
    .await
}

/// A server with settings of the test's choosing.
pub async fn served_with(configure: impl FnOnce(&mut retake_server::Settings)) -> Served {
    InProcessServer::start(configure).await
}

impl InProcessServer {
    /// The CLI's clients for this server, with `token` if any.
    pub async fn clients(&self, token: Option<&str>) -> Clients {
        Clients::remote(&self.url, token, None)
            .await
            .expect("server reachable")
    }
}

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

/// Clients that never cancel on interrupt (as with a server).
pub fn no_auth() -> BearerAuth {
    BearerAuth::default()
}
