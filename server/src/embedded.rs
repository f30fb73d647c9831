//! The engine inside the caller's process, reached through the same
//! generated gRPC stubs over in-memory duplex pipes: the CLI works without
//! a server and behaves exactly as it does against one.

use crate::{Settings, api, engine::Engine};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Uri};

/// Opens the database of `settings` and returns a channel to an
/// in-process server. The server lives as long as the tokio runtime.
/// Runs another process left unfinished are not resumed here: that is
/// the job of `retake-server`, which owns its database.
pub async fn connect(settings: Settings) -> anyhow::Result<Channel> {
    let engine = Engine::open(settings.clone()).await?;
    let routes = api::routes(engine, &settings).await?;
    let (conn_tx, conn_rx) = mpsc::unbounded_channel::<tokio::io::DuplexStream>();
    let incoming =
        tokio_stream::wrappers::UnboundedReceiverStream::new(conn_rx).map(Ok::<_, std::io::Error>);
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "embedded server stopped");
        }
    });
    let channel = Endpoint::from_static("http://embedded.retake")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (client, server) = tokio::io::duplex(1 << 20);
            let sent = conn_tx.send(server);
            async move {
                sent.map_err(|_| std::io::Error::other("embedded server stopped"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        }))
        .await?;
    Ok(channel)
}

use tokio_stream::StreamExt as _;
