//! retake's server: the durable store, the workflow engine, and the gRPC
//! services that expose it. `serve` runs it on a listener; `embedded`
//! runs it inside another process (the CLI) over an in-memory transport.

pub mod settings;

pub use settings::Settings;

/// Serves retake on `listener` until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (settings, listener, shutdown);
    todo!()
}

pub mod embedded {
    //! The engine inside the caller's process, reached through the same
    //! generated gRPC stubs over an in-memory duplex transport.
    use crate::Settings;

    /// Opens the database of `settings` and returns a channel to an
    /// in-process server. The server lives as long as the tokio runtime.
    pub async fn connect(settings: Settings) -> anyhow::Result<tonic::transport::Channel> {
        let _ = settings;
        todo!()
    }
}
