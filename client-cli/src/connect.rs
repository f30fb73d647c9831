//! Reaching the engine: a retake server at a URL, or the engine embedded in
//! this process. Either way commands talk through the same generated stubs.

use crate::cli::GlobalArgs;
use crate::error::{CliError, CliResult, error_chain};
use retake::v1::artifact_service_client::ArtifactServiceClient;
use retake::v1::experiment_service_client::ExperimentServiceClient;
use retake::v1::run_service_client::RunServiceClient;
use retake::v1::worker_service_client::WorkerServiceClient;
use retake::v1::workflow_service_client::WorkflowServiceClient;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Largest message the CLI accepts from the server (artifacts can be large).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Clone, Default)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> CliResult<Self> {
        let header = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
                CliError::usage("the token contains characters not allowed in a header")
            })?),
        };
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

/// The transport every generated client in the CLI runs on.
pub type Transport = InterceptedService<Channel, BearerAuth>;

/// What following a run does when a node starts waiting for a human.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Keep following: someone answers elsewhere (`retake approve`, ResolveWait).
    Follow,
    /// Ask on this terminal (an embedded run, with a terminal to ask on).
    Ask,
    /// Stop there and report the run as waiting (no terminal).
    Stop,
}

/// What a command that follows a run does at a human wait: with a terminal,
/// ask there (embedded) or follow on while someone answers elsewhere
/// (server); without one, stop and report the run as waiting.
pub fn wait_policy(embedded: bool, terminal: bool) -> WaitPolicy {
    match (terminal, embedded) {
        (false, _) => WaitPolicy::Stop,
        (true, true) => WaitPolicy::Ask,
        (true, false) => WaitPolicy::Follow,
    }
}

/// The three generated clients over one channel.
#[derive(Clone)]
pub struct Clients {
    pub runs: RunServiceClient<Transport>,
    pub artifacts: ArtifactServiceClient<Transport>,
    pub workflows: WorkflowServiceClient<Transport>,
    pub workers: WorkerServiceClient<Transport>,
    pub experiments: ExperimentServiceClient<Transport>,
    /// True when the engine runs inside this process: runs die with it.
    pub embedded: bool,
    /// What following a run does at a human wait. By default an embedded
    /// run stops there (nobody else can answer it) and a server's run is
    /// followed on.
    pub waits: WaitPolicy,
    /// Runs started through these clients: the ones an embedded engine drives.
    pub started: Arc<Mutex<HashSet<String>>>,
    /// The engine in this process, when embedded.
    pub local: Option<Arc<retake_server::embedded::Embedded>>,
}

impl Clients {
    /// Clients over an existing channel.
    pub fn from_channel(channel: Channel, auth: BearerAuth, embedded: bool) -> Self {
        Self {
            runs: RunServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            artifacts: ArtifactServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            workflows: WorkflowServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            workers: WorkerServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            experiments: ExperimentServiceClient::with_interceptor(channel, auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            embedded,
            waits: if embedded {
                WaitPolicy::Stop
            } else {
                WaitPolicy::Follow
            },
            started: Arc::default(),
            local: None,
        }
    }

    /// Remembers that `run_id` was started here.
    pub fn note_started(&self, run_id: &str) {
        if let Ok(mut started) = self.started.lock() {
            started.insert(run_id.to_string());
        }
    }

    /// Whether an engine in this process drives `run_id`.
    pub fn drives(&self, run_id: &str) -> bool {
        !self.embedded || self.started.lock().is_ok_and(|s| s.contains(run_id))
    }

    /// Starts the engine in this process on the database at `db`.
    pub async fn embedded(db: &Path) -> CliResult<Self> {
        let text = db.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Err(CliError::usage(
                "--db names a PostgreSQL database: the engine in this process runs on a SQLite file only; \
                 start `retake-server --db postgres://...` and pass its address with --server (or RETAKE_SERVER)",
            ));
        }
        let db = Path::new(text.strip_prefix("sqlite://").unwrap_or(&text)).to_path_buf();
        let db = db.as_path();
        let settings = retake_server::Settings::new(db);
        let local = retake_server::embedded::start(settings)
            .await
            .map_err(|e| {
                CliError::failed(format!(
                    "cannot open database {}: {}",
                    db.display(),
                    anyhow_chain(&e)
                ))
            })?;
        let mut clients = Self::from_channel(local.channel(), BearerAuth::default(), true);
        clients.local = Some(Arc::new(local));
        Ok(clients)
    }

    /// Before an embedded engine starts runs: holds the database's lock
    /// (shared with other `retake` commands doing the same) while they
    /// execute, so no `retake-server` resumes them meanwhile. Nothing to
    /// do with a server.
    pub fn hold_database(&self) -> CliResult<()> {
        match &self.local {
            None => Ok(()),
            Some(local) => local
                .hold(retake_server::lock::LockMode::Shared)
                .map_err(|e| lock_error(local.db_path(), e)),
        }
    }

    /// Has the embedded engine drive `run_id`, a run waiting (or left
    /// unfinished) in the database, so it can be answered here; with
    /// `cancel` it is cancelled instead. Takes the database's lock, which
    /// a `retake-server` serving the database holds: then the answer must
    /// go to that server. None with a server, which drives its runs itself.
    pub async fn take_over(
        &self,
        run_id: &str,
        cancel: bool,
    ) -> CliResult<Option<retake_server::embedded::Resumed>> {
        use retake_server::embedded::ResumeError;
        let Some(local) = &self.local else {
            return Ok(None);
        };
        let resumed = local
            .resume_run(run_id, cancel)
            .await
            .map_err(|e| match e {
                ResumeError::Locked(e) => lock_error(local.db_path(), e),
                ResumeError::Engine(e) => CliError::failed(e.to_string()),
            })?;
        self.note_started(&resumed.run_id);
        Ok(Some(resumed))
    }

    /// As [`Clients::take_over`], for an experiment another process left
    /// running: with `cancel` it is cancelled here. The experiment's id
    /// and whether it was taken over (not when it had finished or runs in
    /// this process); None with a server, which runs its experiments
    /// itself.
    pub async fn take_over_experiment(
        &self,
        experiment_ref: &str,
        cancel: bool,
    ) -> CliResult<Option<(String, bool)>> {
        use retake_server::embedded::ResumeError;
        let Some(local) = &self.local else {
            return Ok(None);
        };
        let taken = local
            .resume_experiment(experiment_ref, cancel)
            .await
            .map_err(|e| match e {
                ResumeError::Locked(e) => lock_error(local.db_path(), e),
                ResumeError::Engine(e) => CliError::from(tonic::Status::from(e)),
            })?;
        Ok(Some(taken))
    }

    /// Connects to the retake server at `url`.
    pub async fn remote(url: &str, token: Option<&str>, ca_cert: Option<&Path>) -> CliResult<Self> {
        let unreachable = |reason: String| {
            let reason = reason
                .strip_prefix("transport error: ")
                .unwrap_or(&reason)
                .to_string();
            CliError::failed(format!("cannot reach retake server at {url}: {reason}"))
        };
        let with_scheme = server_uri(url)?;
        let mut endpoint =
            Endpoint::from_shared(with_scheme.clone()).map_err(|e| unreachable(error_chain(&e)))?;
        if with_scheme.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = ca_cert {
                let pem = std::fs::read(ca).map_err(|e| {
                    CliError::usage(format!("cannot read CA certificate {}: {e}", ca.display()))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| unreachable(error_chain(&e)))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let mut reason = error_chain(&e);
            if let Some(advice) = tls_advice(&reason, ca_cert.is_some()) {
                reason.push_str(&format!(" ({advice})"));
            }
            unreachable(reason)
        })?;
        Ok(Self::from_channel(channel, BearerAuth::new(token)?, false))
    }

    /// Connects as the global flags say: `--server` if given, else embedded.
    pub async fn connect(global: &GlobalArgs) -> CliResult<Self> {
        match global.server_url() {
            None => Self::embedded(&global.db).await,
            Some(url) => {
                let token = read_token(global)?;
                Self::remote(url, token.as_deref(), global.ca_cert.as_deref()).await
            }
        }
    }
}

/// The server address as a URI: `HOST:PORT` means `http://HOST:PORT`;
/// `http://` and `https://` (TLS) are taken as they are.
pub fn server_uri(url: &str) -> CliResult<String> {
    let url = url.trim().trim_end_matches('/');
    match url.split_once("://") {
        None => Ok(format!("http://{url}")),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => Ok(format!("http://{rest}")),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
            Ok(format!("https://{rest}"))
        }
        Some((scheme, _)) => Err(CliError::usage(format!(
            "cannot use server {url}: '{scheme}://' is not supported; give HOST:PORT, http://HOST:PORT or https://HOST:PORT"
        ))),
    }
}

/// What to do about a TLS error the server's certificate caused, if it is one.
pub fn tls_advice(reason: &str, ca_given: bool) -> Option<&'static str> {
    if reason.contains("CaUsedAsEndEntity") {
        Some(
            "the server's certificate is a CA certificate, with basicConstraints CA:TRUE as a \
             plain 'openssl req -x509' makes it, and TLS clients refuse that as a server's: make \
             a CA and a server certificate signed by it, or a certificate with \
             basicConstraints=CA:FALSE and a subjectAltName naming the server's host; serve it \
             with retake-server --tls-cert/--tls-key and give the CA (or that certificate) to \
             --ca-cert. README.md's TLS section has the openssl commands",
        )
    } else if reason.contains("NotValidForName") {
        Some(
            "the server's certificate does not name this host in its subjectAltName: connect \
             with a name it lists, or make the certificate with subjectAltName=DNS:HOST,IP:ADDRESS",
        )
    } else if !ca_given && (reason.contains("certificate") || reason.contains("UnknownIssuer")) {
        Some("give the CA that signed it with --ca-cert")
    } else {
        None
    }
}

/// What to do when another process holds the database.
fn lock_error(db: &Path, e: retake_server::lock::DbLockError) -> CliError {
    match e {
        retake_server::lock::DbLockError::Held { .. } => CliError::failed(format!(
            "the database {} is in use by another retake process (a retake-server?): \
             pass --server URL to reach it",
            db.display()
        )),
        e => CliError::failed(e.to_string()),
    }
}

/// The bearer token: `--token-file` wins over RETAKE_TOKEN.
fn read_token(global: &GlobalArgs) -> CliResult<Option<String>> {
    if let Some(path) = &global.token_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!("cannot read token file {}: {e}", path.display()))
        })?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(global.token.clone())
}

fn anyhow_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_take_three_forms() {
        assert_eq!(
            server_uri("127.0.0.1:50051").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            server_uri("http://127.0.0.1:50051/").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            server_uri("HTTPS://retake.example:443").unwrap(),
            "https://retake.example:443"
        );
        assert_eq!(
            server_uri(" localhost:50051 ").unwrap(),
            "http://localhost:50051"
        );
        let err = server_uri("grpc://127.0.0.1:50051").unwrap_err();
        assert_eq!(err.code, 2);
        assert!(
            err.message.contains("'grpc://' is not supported"),
            "{}",
            err.message
        );
    }

    #[test]
    fn without_a_terminal_runs_stop_at_waits() {
        assert_eq!(wait_policy(true, true), WaitPolicy::Ask);
        assert_eq!(wait_policy(false, true), WaitPolicy::Follow);
        assert_eq!(wait_policy(true, false), WaitPolicy::Stop);
        assert_eq!(wait_policy(false, false), WaitPolicy::Stop);
    }

    #[test]
    fn certificate_errors_say_what_to_do() {
        let advice = tls_advice("invalid peer certificate: CaUsedAsEndEntity", true).unwrap();
        for needed in [
            "basicConstraints=CA:FALSE",
            "subjectAltName",
            "--ca-cert",
            "signed by it",
        ] {
            assert!(advice.contains(needed), "{needed}: {advice}");
        }
        assert!(
            tls_advice("invalid peer certificate: UnknownIssuer", false)
                .unwrap()
                .contains("--ca-cert")
        );
        assert!(tls_advice("connection refused", false).is_none());
    }
}
