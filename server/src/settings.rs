//! Server settings: where the database lives, how much runs concurrently,
//! and the limits that protect the server from oversized input.

use std::path::PathBuf;

/// Everything a server instance is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// SQLite database file; created with its parent directory if missing.
    pub db_path: PathBuf,
    /// Nodes executing at once across all runs.
    pub max_parallel_nodes: usize,
    /// Runs in flight at once; StartRun beyond it is RESOURCE_EXHAUSTED.
    pub max_concurrent_runs: usize,
    /// Bearer token every RPC but health must carry; None turns auth off.
    pub auth_token: Option<String>,
    /// Largest workflow document accepted, in bytes.
    pub max_workflow_bytes: usize,
    /// Most nodes a workflow may have.
    pub max_nodes: usize,
    /// Largest artifact a node may produce, in bytes.
    pub max_artifact_bytes: usize,
    /// Largest gRPC request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Resume runs left RUNNING by a previous process at start-up.
    pub recover_runs: bool,
    /// PEM certificate and key; both set turns TLS on.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Settings {
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            max_parallel_nodes: 64,
            max_concurrent_runs: 1000,
            auth_token: None,
            max_workflow_bytes: 8 * 1024 * 1024,
            max_nodes: 20_000,
            max_artifact_bytes: 16 * 1024 * 1024,
            max_request_bytes: 64 * 1024 * 1024,
            recover_runs: true,
            tls_cert: None,
            tls_key: None,
        }
    }
}
