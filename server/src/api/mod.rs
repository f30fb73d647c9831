//! The gRPC surface: retake's three services, health, and reflection (v1
//! and v1alpha), behind bearer-token auth when it is configured.

mod artifact_service;
mod console;
mod experiment_convert;
mod experiment_service;
pub use console::{ConsoleFiles, ConsoleLayer};
pub use metrics_http::MetricsLayer;
pub use trace_http::TraceLayer;
mod convert;
mod metrics_http;
mod paging;
mod request_ids;
mod run_filter;
mod run_service;
mod status;
mod trace_http;
pub use status::StatusLayer;
mod worker_service;
mod workflow_service;

use crate::Settings;
use crate::engine::Engine;
use retake::v1::artifact_service_server::ArtifactServiceServer;
use retake::v1::experiment_service_server::ExperimentServiceServer;
use retake::v1::run_service_server::RunServiceServer;
use retake::v1::worker_service_server::WorkerServiceServer;
use retake::v1::workflow_service_server::WorkflowServiceServer;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// Checks `authorization: Bearer TOKEN` on every call when a token is set.
/// The scheme is case-insensitive; tokens are compared as SHA-256 digests,
/// so neither their content nor their length shows in the time taken.
#[derive(Clone)]
pub struct Auth {
    token_digest: Option<[u8; 32]>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token_digest: token.map(digest),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token_digest else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if allows(expected, given) {
            Ok(req)
        } else {
            Err(status::with_details(
                tonic::Code::Unauthenticated,
                "a valid bearer token is required (authorization: Bearer TOKEN)".into(),
                crate::error::Reason::Unauthenticated,
                &[],
                None,
            ))
        }
    }
}

impl Auth {
    /// Whether a request with this `authorization` header may pass.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        match &self.token_digest {
            None => true,
            Some(expected) => allows(expected, authorization),
        }
    }
}

fn allows(expected: &[u8; 32], authorization: Option<&str>) -> bool {
    let given = authorization
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or_default();
    constant_time_eq(&digest(given), expected)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every service of the server, ready to be served on any transport.
pub async fn routes(engine: Engine, settings: &Settings) -> anyhow::Result<Routes> {
    let auth = Auth::new(settings.auth_token.as_deref());
    let limit = settings.max_request_bytes;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<RunServiceServer<run_service::RunApi>>()
        .await;
    health_reporter
        .set_serving::<ArtifactServiceServer<artifact_service::ArtifactApi>>()
        .await;
    health_reporter
        .set_serving::<WorkflowServiceServer<workflow_service::WorkflowApi>>()
        .await;
    health_reporter
        .set_serving::<ExperimentServiceServer<experiment_service::ExperimentApi>>()
        .await;

    // Both reflection versions describe everything served, each other included.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(retake::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let runs = RunServiceServer::new(run_service::RunApi {
        engine: engine.clone(),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let artifacts = ArtifactServiceServer::new(artifact_service::ArtifactApi {
        engine: engine.clone(),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let workers = WorkerServiceServer::new(worker_service::WorkerApi {
        engine: engine.clone(),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let experiments = ExperimentServiceServer::new(experiment_service::ExperimentApi {
        engine: engine.clone(),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let workflows = WorkflowServiceServer::new(workflow_service::WorkflowApi { engine })
        .max_decoding_message_size(limit);

    Ok(Routes::new(health)
        .add_service(InterceptedService::new(runs, auth.clone()))
        .add_service(InterceptedService::new(artifacts, auth.clone()))
        .add_service(InterceptedService::new(workflows, auth.clone()))
        .add_service(InterceptedService::new(workers, auth.clone()))
        .add_service(InterceptedService::new(experiments, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth)))
}
