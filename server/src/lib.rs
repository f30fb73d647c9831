//! retake's server: the durable store, the workflow engine, and the gRPC
//! services that expose it. `serve` runs it on a listener; `embedded`
//! runs it inside another process (the CLI) over an in-memory transport.

pub mod api;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod lock;
pub mod metrics;
pub mod model;
pub mod settings;
pub mod store;
pub mod telemetry;

pub use settings::Settings;

use anyhow::Context;

/// Serves retake on `listener` until `shutdown` resolves. Runs left
/// unfinished by a previous process are resumed first.
pub async fn serve(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (engine, _lock) = open(&settings).await?;
    serve_engine(engine, settings, listener, shutdown).await
}

/// Opens the database (refusing one it cannot write), takes its lock
/// exclusively (refusing a database another process executes runs from,
/// see [`lock`]) and resumes runs a previous process left unfinished.
/// The runs are this process's for as long as it holds the lock.
///
/// On a PostgreSQL database shared with other servers there is no lock:
/// the server joins the others, claiming the runs no server holds.
pub async fn open(settings: &Settings) -> anyhow::Result<(engine::Engine, Option<lock::DbLock>)> {
    if let Some(pg) = &settings.postgres {
        let engine = engine::Engine::open(settings.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot open database {}", store::redact_url(&pg.url)))?;
        if settings.recover_runs {
            engine.join_cluster().await?;
        }
        return Ok((engine, None));
    }
    let engine = engine::Engine::open(settings.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot open database {}", settings.db_path.display()))?;
    let lock = lock::DbLock::try_acquire(&settings.db_path, lock::LockMode::Exclusive).map_err(
        |e| match e {
            lock::DbLockError::Held { .. } => anyhow::anyhow!(
                "{e} (another retake-server, or a retake command executing runs without --server): \
                 stop it first, or give this server a database of its own with --db"
            ),
            e => anyhow::Error::new(e),
        },
    )?;
    if settings.recover_runs {
        let resumed = engine.recover().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished runs");
        }
        let experiments = engine.recover_experiments().await?;
        if experiments > 0 {
            tracing::info!(experiments, "resumed unfinished experiments");
        }
    }
    Ok((engine, Some(lock)))
}

/// Compacts a SQLite database offline: VACUUM rewrites the whole file
/// (holding it for as long as that takes, so never while serving), with
/// incremental vacuum on from then on. Prints the size before and after.
pub async fn vacuum_offline(db: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::Connection;
    anyhow::ensure!(db.is_file(), "no database at {}", db.display());
    let _lock = lock::DbLock::try_acquire(db, lock::LockMode::Exclusive).map_err(|e| {
        anyhow::anyhow!("{e}: stop the server or command using the database, then compact it")
    })?;
    let size = |path: &std::path::Path| -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
            .map(|m| m.len())
            .sum()
    };
    let before = size(db);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    for statement in [
        "PRAGMA auto_vacuum = INCREMENTAL",
        "VACUUM",
        "PRAGMA wal_checkpoint(TRUNCATE)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .with_context(|| format!("{statement} on {}", db.display()))?;
    }
    conn.close().await?;
    println!(
        "compacted {}: {before} bytes before, {} after",
        db.display(),
        size(db)
    );
    Ok(())
}

/// How long open calls get to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves an opened engine on `listener` until `shutdown` resolves; then
/// ends open event streams and gives calls in flight a few seconds.
pub async fn serve_engine(
    engine: engine::Engine,
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let routes = api::routes(engine.clone(), &settings).await?;
    if let Some(endpoint) = &settings.otlp_endpoint
        && !telemetry::enabled()
    {
        telemetry::init(endpoint, "retake")?;
    }
    if let Some(retention) = settings.retention {
        engine.spawn_retention(retention);
    }
    let mut builder = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        let cert =
            std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let on_shutdown = {
        let engine = engine.clone();
        async move {
            shutdown.await;
            engine.begin_shutdown();
            let _ = stopping_tx.send(());
        }
    };
    // HTTP/1.1 beside HTTP/2: browsers call the services over gRPC-Web
    // and load the console from the same address.
    let server = builder
        .accept_http1(true)
        .layer(api::MetricsLayer::new(
            engine.clone(),
            settings.auth_token.as_deref(),
        ))
        .layer(api::ConsoleLayer::new(&settings.console))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(api::StatusLayer)
        .layer(api::TraceLayer)
        .add_routes(routes)
        // Without TCP_NODELAY, each unary reply's last frame waits ~40 ms
        // for the client's delayed ACK.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            on_shutdown,
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = stopping.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("calls still open {} s after shutdown began; stopping anyway", SHUTDOWN_GRACE.as_secs());
        }
    }
    engine.leave_cluster().await;
    telemetry::flush(std::time::Duration::from_secs(3)).await;
    Ok(())
}
