//! `retake-server`: serves retake over gRPC until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use retake_server::Settings;
use retake_server::api::ConsoleFiles;
use retake_server::settings::{EnvPolicy, PostgresSettings};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "retake-server",
    version,
    about = "Runs and replays multi-agent workflows over gRPC",
    after_help = "Several servers can share one PostgreSQL database (--db postgres://...) behind a gRPC \
load balancer: every server answers every call for every run, each executes the runs it holds a \
lease on, and when one dies the others take its runs over once its leases run out (--lease-ms). \
See docs/deploy.md."
)]
struct Args {
    /// Address to listen on: gRPC, gRPC-Web, and the web console at
    /// http://ADDRESS/ (https:// with TLS).
    #[arg(long, default_value = "127.0.0.1:50051", env = "RETAKE_LISTEN")]
    listen: String,
    /// Where runs are stored: a SQLite file (a path, or sqlite://PATH), or
    /// a PostgreSQL database that several servers share
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE; add ?sslmode=require
    /// or verify-full for TLS).
    #[arg(
        long,
        default_value = ".retake/retake.db",
        env = "RETAKE_DB",
        value_name = "PATH|URL"
    )]
    db: String,
    /// Database connections for reads (on PostgreSQL also for claims and
    /// leases); the writer holds one more.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: u32,
    /// On a shared PostgreSQL database: milliseconds a server's claim on a
    /// run holds without renewal (renewed every third of it). When a
    /// server dies, the others take its runs over after at most this.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    lease_ms: u64,
    /// On a shared PostgreSQL database: this server's name in the runs it
    /// executes (default: host, process id and a random suffix). Must be
    /// unique among the servers.
    #[arg(long, value_name = "NAME")]
    server_id: Option<String>,
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
    /// Runs executing at once on this server (a run waiting for a person
    /// does not count). Over it, StartRun and ReplayRun are refused; on a
    /// shared PostgreSQL database the run is stored instead for a server
    /// with room, and this one claims no new runs until it has room.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_concurrent_runs: u32,
    /// Environment variables workflows may name as `${env.NAME}` in
    /// credential keys (api_key, token, ...); a trailing `*` is a prefix.
    /// Repeatable or comma-separated. Default: the LLM providers' key
    /// variables (OPENAI_API_KEY, ...) and RETAKE_SECRET_*.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    allow_env: Vec<String>,
    /// Hosts (host or host:port) that may receive a value taken from the
    /// server's environment, besides each LLM provider's own endpoint.
    /// Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    allow_secret_host: Vec<String>,
    /// Seconds a run keeps retrying writes the disk refuses (disk full)
    /// before it is failed with "disk full" as the cause.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    disk_full_timeout: u64,
    /// Milliseconds a worker's task stays its own after the worker was last
    /// heard from (workers send a heartbeat every third of it); then the
    /// task goes to another worker as a new attempt, which does not count
    /// against the node's retry budget.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    worker_lease_ms: u64,
    /// Caps the database at this many pages (4 KiB each); writes past it
    /// fail as on a full disk.
    #[arg(long, value_name = "PAGES")]
    max_db_pages: Option<u32>,
    /// Replays an experiment runs at once when it does not say.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    experiment_concurrency: u32,
    /// How log lines (on stderr) are written: text for people, json (one
    /// object per line, with the run and node they are about) for log
    /// shippers. RUST_LOG picks what is logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "RETAKE_LOG_FORMAT")]
    log_format: LogFormat,
    /// Delete finished runs older than this many days (fractions allowed)
    /// in the background, keeping any run a newer run or experiment still
    /// uses (as DeleteRun does). Off by default.
    #[arg(long, value_name = "DAYS", value_parser = retention_days)]
    retention: Option<f64>,
    /// Export OpenTelemetry traces (a span per run and per node attempt,
    /// and per gRPC call) to this OTLP/gRPC endpoint, e.g.
    /// http://localhost:4317. Off when not given.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Compact the SQLite database (VACUUM, turning on incremental vacuum
    /// for databases made before it) and exit. Offline: refused while a
    /// server or a command uses the database.
    #[arg(long)]
    vacuum: bool,
    /// Serve no web console: the address answers gRPC and gRPC-Web only.
    #[arg(long, conflicts_with = "console_dir")]
    no_console: bool,
    /// Serve the web console's files from DIR (laid out like console/dist)
    /// instead of the copy built into this binary.
    #[arg(long, value_name = "DIR")]
    console_dir: Option<PathBuf>,
}

fn retention_days(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(days) if days > 0.0 && days.is_finite() && days <= 365_000.0 => Ok(days),
        _ => Err(format!(
            "'{text}' is not a number of days greater than 0, such as 30 or 0.5"
        )),
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only for a person at a terminal, never in a log file.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The spans' fields (run_id, node_id, attempt) go in `spans`.
        LogFormat::Json => logs.json().with_span_list(true).init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(args.log_format);
    let mut settings = match postgres_url(&args.db) {
        Some(url) => {
            let mut settings = Settings::new(".retake/unused.db");
            let mut pg = PostgresSettings::new(url);
            pg.lease = std::time::Duration::from_millis(args.lease_ms);
            if let Some(id) = args.server_id.filter(|id| !id.trim().is_empty()) {
                pg.server_id = id;
            }
            settings.postgres = Some(pg);
            settings
        }
        None => Settings::new(sqlite_path(&args.db)),
    };
    settings.db_pool_size = args.db_pool_size;
    settings.max_parallel_nodes = args.max_parallel_nodes as usize;
    settings.max_concurrent_runs = args.max_concurrent_runs as usize;
    settings.tls_cert = args.tls_cert;
    settings.tls_key = args.tls_key;
    settings.max_db_pages = args.max_db_pages;
    settings.disk_full_timeout = std::time::Duration::from_secs(args.disk_full_timeout);
    settings.worker_lease = std::time::Duration::from_millis(args.worker_lease_ms);
    settings.experiment_concurrency = args.experiment_concurrency;
    settings.otlp_endpoint = args.otlp_endpoint.filter(|e| !e.trim().is_empty());
    settings.retention = args
        .retention
        .map(|days| std::time::Duration::from_secs_f64(days * 86_400.0));
    if args.vacuum {
        anyhow::ensure!(
            settings.postgres.is_none(),
            "--vacuum compacts a SQLite database; PostgreSQL reclaims space with its own VACUUM"
        );
        return retake_server::vacuum_offline(&settings.db_path).await;
    }
    settings.console = match (args.no_console, args.console_dir) {
        (true, _) => ConsoleFiles::Off,
        (false, Some(dir)) => {
            anyhow::ensure!(
                dir.join("index.html").is_file(),
                "--console-dir {}: no index.html in it (build the console with scripts/build-console)",
                dir.display()
            );
            ConsoleFiles::Dir(dir)
        }
        (false, None) => ConsoleFiles::Embedded,
    };
    let mut policy = EnvPolicy::default();
    if !args.allow_env.is_empty() {
        policy.allowed_vars = args.allow_env;
    }
    policy.secret_hosts = args.allow_secret_host;
    settings.env_policy = Some(std::sync::Arc::new(policy));
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
    // The database first: a server that cannot store runs does not listen.
    // Held until the process ends: no other process executes these runs.
    let (engine, _lock) = retake_server::open(&settings).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::debug!(auth = settings.auth_token.is_some(), "serving");
    // Scripts that pass port 0 read the real address from this line.
    println!("retake-server listening on {addr}");
    retake_server::serve_engine(engine, settings, listener, shutdown_signal()).await?;
    tracing::info!("retake-server stopped");
    Ok(())
}

/// `--db` naming a PostgreSQL database.
fn postgres_url(db: &str) -> Option<&str> {
    (db.starts_with("postgres://") || db.starts_with("postgresql://")).then_some(db)
}

/// `--db` naming a SQLite file, with or without `sqlite://`.
fn sqlite_path(db: &str) -> PathBuf {
    PathBuf::from(db.strip_prefix("sqlite://").unwrap_or(db))
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
