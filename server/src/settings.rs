//! Server settings: where the database lives, how much runs concurrently,
//! and the limits that protect the server from oversized input.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a server instance is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// SQLite database file; created with its parent directory if missing.
    /// Unused when `postgres` is set.
    pub db_path: PathBuf,
    /// A PostgreSQL database shared with other servers, instead of the file.
    pub postgres: Option<PostgresSettings>,
    /// Connections reads share; 0 takes the store's default.
    pub db_pool_size: u32,
    /// Nodes executing at once across all runs.
    pub max_parallel_nodes: usize,
    /// Runs in flight at once; StartRun beyond it is RESOURCE_EXHAUSTED
    /// (on a shared database, the run is left for a server with room).
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
    /// Caps the database at this many pages; writes past it fail as on a
    /// full disk. None: no cap beyond the disk's.
    pub max_db_pages: Option<u32>,
    /// How long a run keeps retrying a commit the disk refuses before it
    /// is failed with "disk full" as the cause.
    pub disk_full_timeout: Duration,
    /// How long a worker's task stays its own after the worker was last
    /// heard from; then the task goes to another worker as a new attempt.
    pub worker_lease: Duration,
    /// Which `${env.NAME}` variables workflows may name, and where their
    /// values may be sent. None (the default, for the CLI's embedded
    /// engine): the user is the operator and no restriction applies;
    /// `retake-server` always sets one.
    pub env_policy: Option<std::sync::Arc<EnvPolicy>>,
    /// Replays an experiment runs at once when its request leaves it open.
    pub experiment_concurrency: u32,
    /// The web console's files, served on the API's address.
    pub console: crate::api::ConsoleFiles,
    /// Finished runs older than this are deleted in the background (with
    /// the reference rule of DeleteRun: a run still used is kept).
    pub retention: Option<Duration>,
    /// Where trace spans go (OTLP over gRPC, `http://HOST:4317`); none are
    /// made without it.
    pub otlp_endpoint: Option<String>,
}

/// A PostgreSQL database that several servers share.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/database?sslmode=...`.
    pub url: String,
    /// How long this server's claim on a run holds without renewal: when
    /// it dies, another server takes its runs over after at most this.
    pub lease: Duration,
    /// This server's name in the runs it claims; unique per process.
    pub server_id: String,
}

impl PostgresSettings {
    /// The default lease.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            lease: Self::DEFAULT_LEASE,
            server_id: default_server_id(),
        }
    }
}

/// `host-pid-random`: readable in the runs table, unique per process.
fn default_server_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "server".into());
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 8..]
    )
}

/// What an operator lets workflows take from the server's environment.
#[derive(Clone, Debug)]
pub struct EnvPolicy {
    /// Variable names workflows may name; an entry ending in `*` is a prefix.
    pub allowed_vars: Vec<String>,
    /// Hosts (besides each provider's default endpoint) that may receive a
    /// value taken from the server's environment.
    pub secret_hosts: Vec<String>,
}

impl Default for EnvPolicy {
    fn default() -> Self {
        let mut allowed_vars: Vec<String> = crate::engine::agents::PROVIDER_KEY_VARS
            .iter()
            .map(|v| v.to_string())
            .collect();
        allowed_vars.push("RETAKE_SECRET_*".into());
        Self {
            allowed_vars,
            secret_hosts: Vec::new(),
        }
    }
}

impl EnvPolicy {
    pub fn allows_var(&self, name: &str) -> bool {
        self.allowed_vars.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => a == name,
        })
    }

    /// `host` is `name` or `name:port`; an allowed entry without a port
    /// allows every port of its host.
    pub fn allows_host(&self, host: &str) -> bool {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        self.secret_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(name))
    }
}

impl Settings {
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            postgres: None,
            db_pool_size: 0,
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
            max_db_pages: None,
            disk_full_timeout: Duration::from_secs(300),
            worker_lease: Duration::from_secs(10),
            env_policy: None,
            experiment_concurrency: crate::engine::experiments::DEFAULT_CONCURRENCY,
            console: crate::api::ConsoleFiles::Embedded,
            retention: None,
            otlp_endpoint: None,
        }
    }
}
