//! `retake-server`: serves retake over gRPC until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use retake_server::Settings;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "retake-server",
    version,
    about = "Runs and replays multi-agent workflows over gRPC"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051", env = "RETAKE_LISTEN")]
    listen: String,
    /// SQLite database file.
    #[arg(long, default_value = ".retake/retake.db", env = "RETAKE_DB")]
    db: PathBuf,
    /// File holding the bearer token every RPC but health must carry.
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// PEM certificate for TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Nodes executing at once across all runs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_parallel_nodes: u32,
    /// Runs in flight at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_concurrent_runs: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut settings = Settings::new(args.db);
    settings.max_parallel_nodes = args.max_parallel_nodes as usize;
    settings.max_concurrent_runs = args.max_concurrent_runs as usize;
    settings.tls_cert = args.tls_cert;
    settings.tls_key = args.tls_key;
    if let Some(path) = args.auth_token_file {
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read auth token file {}", path.display()))?
            .trim()
            .to_string();
        anyhow::ensure!(
            !token.is_empty(),
            "auth token file {} is empty",
            path.display()
        );
        settings.auth_token = Some(token);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %settings.db_path.display(), auth = settings.auth_token.is_some(), "retake-server listening");
    // Scripts that pass port 0 read the real address from this line.
    println!("retake-server listening on {addr}");
    retake_server::serve(settings, listener, shutdown_signal()).await?;
    tracing::info!("retake-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
