//! retake's server: the durable store, the workflow engine, and the gRPC
//! services that expose it. `serve` runs it on a listener; `embedded`
//! runs it inside another process (the CLI) over an in-memory transport.

pub mod api;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod settings;
pub mod store;

pub use settings::Settings;

use anyhow::Context;

/// Serves retake on `listener` until `shutdown` resolves. Runs left
/// unfinished by a previous process are resumed first.
pub async fn serve(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = engine::Engine::open(settings.clone())
        .await
        .with_context(|| format!("cannot open database {}", settings.db_path.display()))?;
    if settings.recover_runs {
        let resumed = engine.recover().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished runs");
        }
    }
    let routes = api::routes(engine, &settings).await?;
    let mut builder = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        let cert =
            std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    builder
        .add_routes(routes)
        // Without TCP_NODELAY, each unary reply's last frame waits ~40 ms
        // for the client's delayed ACK.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
