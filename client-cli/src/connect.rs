//! Reaching the engine: a retake server at a URL, or the engine embedded in
//! this process. Either way commands talk through the same generated stubs.

use crate::cli::GlobalArgs;
use crate::error::{CliError, CliResult, error_chain};
use retake::v1::artifact_service_client::ArtifactServiceClient;
use retake::v1::run_service_client::RunServiceClient;
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

/// The three generated clients over one channel.
#[derive(Clone)]
pub struct Clients {
    pub runs: RunServiceClient<Transport>,
    pub artifacts: ArtifactServiceClient<Transport>,
    pub workflows: WorkflowServiceClient<Transport>,
    /// True when the engine runs inside this process: runs die with it.
    pub embedded: bool,
    /// Ask on the terminal when an embedded run waits for a human.
    pub interactive: bool,
    /// Runs started through these clients: the ones an embedded engine drives.
    pub started: Arc<Mutex<HashSet<String>>>,
}

impl Clients {
    /// Clients over an existing channel.
    pub fn from_channel(channel: Channel, auth: BearerAuth, embedded: bool) -> Self {
        Self {
            runs: RunServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            artifacts: ArtifactServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            workflows: WorkflowServiceClient::with_interceptor(channel, auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            embedded,
            interactive: false,
            started: Arc::default(),
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
        let settings = retake_server::Settings::new(db);
        let channel = retake_server::embedded::connect(settings)
            .await
            .map_err(|e| {
                CliError::failed(format!(
                    "cannot open database {}: {}",
                    db.display(),
                    anyhow_chain(&e)
                ))
            })?;
        Ok(Self::from_channel(channel, BearerAuth::default(), true))
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
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
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
            if ca_cert.is_none() && reason.contains("certificate") {
                reason.push_str(" (give the CA that signed it with --ca-cert)");
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
