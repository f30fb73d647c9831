//! A real retake server inside the test process: `retake_server::serve` on
//! 127.0.0.1:0 with a database in a temporary directory, reached over real
//! gRPC on TCP.

use crate::client::Client;
use crate::db_dir::DbDir;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use tokio::sync::oneshot;

/// The server alone, stopped when dropped. Its URL is `https://…` when the
/// settings turn TLS on.
pub struct InProcessServer {
    pub addr: SocketAddr,
    pub url: String,
    /// The database file (the settings' `db_path`).
    pub db: PathBuf,
    /// The temporary directory of the database.
    pub dir: DbDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessServer {
    /// A server on a fresh database, with settings of the test's choosing.
    pub async fn start(configure: impl FnOnce(&mut retake_server::Settings)) -> InProcessServer {
        InProcessServer::start_in(DbDir::new(), configure).await
    }

    /// A server on `dir/retake.db` (unless `configure` points elsewhere).
    pub async fn start_in(
        dir: DbDir,
        configure: impl FnOnce(&mut retake_server::Settings),
    ) -> InProcessServer {
        let mut settings = retake_server::Settings::new(dir.db());
        configure(&mut settings);
        let scheme = if settings.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let db = settings.db_path.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(retake_server::serve(settings, listener, async {
            let _ = stopped.await;
        }));
        InProcessServer {
            addr,
            url: format!("{scheme}://{addr}"),
            db,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server, waits for it to finish, and hands back its
    /// directory, for a restart on the same database.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shut_down().await;
        std::mem::take(&mut self.dir).into_temp_dir()
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The server's own result is the test's business only when it
            // asks for it; here it is going away.
            let _ = task.await;
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A server in this process with the generated clients connected to it;
/// the client's calls are the server's (`s.start_run(…)`, `s.runs`).
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: PathBuf,
    client: Client,
    server: InProcessServer,
}

impl TestServer {
    /// Stops the server and hands back its directory, for restarts.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.stop().await
    }
}

impl Deref for TestServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A server with default settings on a fresh database.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// A server on a fresh database, with settings of the test's choosing.
pub async fn start_with(configure: impl FnOnce(&mut retake_server::Settings)) -> TestServer {
    start_in(tempfile::tempdir().expect("temporary directory"), configure).await
}

/// A server on `dir/retake.db`: a restart when `dir` came from
/// [`TestServer::stop`].
pub async fn start_in(
    dir: tempfile::TempDir,
    configure: impl FnOnce(&mut retake_server::Settings),
) -> TestServer {
    let server = InProcessServer::start_in(DbDir::from(dir), configure).await;
    let client = Client::connect(&server.url).await;
    TestServer {
        addr: server.addr,
        db: server.db.clone(),
        client,
        server,
    }
}
