//! A throw-away PostgreSQL cluster for tests: one per test process,
//! started on first use from Debian's `postgresql` package (installed by
//! `.ci/run`, never by the tests), on a free port of 127.0.0.1, its data in
//! a temporary directory; every test gets a fresh database on it.
//!
//! PostgreSQL refuses to run as root, so as root its programs run as the
//! `postgres` user. A static is never dropped, so a small reaper process
//! watches the test process and stops the cluster and removes its
//! directory when the test process is gone, however it ended.
//!
//! Without PostgreSQL, tests that need it skip with a note, except under
//! `CI=true`, where they fail: CI cannot go green without the real part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A database of its own for one test.
pub struct PgDatabase {
    url: String,
    ca_cert: PathBuf,
}

impl PgDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The certificate the cluster serves TLS with (self-signed, for
    /// 127.0.0.1): the root to verify it against.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }
}

struct Cluster {
    port: u16,
    ca_cert: PathBuf,
}

/// Debian's versioned bin directory (the highest version), else the
/// directory of `initdb` on PATH.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn under_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// `program args…`, as the `postgres` user when this process is root.
fn pg_command(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

#[track_caller]
fn run(mut command: Command, what: &str, log: Option<&Path>) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"));
    if !out.status.success() {
        let log_tail = log
            .map(|l| crate::process::tail(l, 3000))
            .unwrap_or_default();
        panic!(
            "{what} failed ({}): {command:?}\n{}\n{}\n{log_tail}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    /// `durable`: PostgreSQL's defaults (fsync, synchronous commit), for
    /// figures; otherwise settings that only make tests faster.
    fn start(bin: PathBuf, durable: bool) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("retake-pg-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&root);
                    c
                },
                "chown",
                None,
            );
        }
        let data = root.join("data");
        let log = root.join("postgres.log");
        let data_s = data.to_str().expect("a UTF-8 path");
        let (cert, key) = self_signed(&root);
        run(
            pg_command(
                &bin.join("initdb"),
                &[
                    "-D",
                    data_s,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            ),
            "initdb",
            None,
        );
        let port = free_port();
        let fast = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        // TLS on, as a deployment has it; clients choose with sslmode.
        let options = format!(
            "-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300 \
             -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} {fast}",
            root = root.display(),
            cert = cert.display(),
            key = key.display(),
        );
        run(
            pg_command(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    data_s,
                    "-o",
                    &options,
                    "-l",
                    log.to_str().expect("UTF-8"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
            Some(&log),
        );
        spawn_reaper(&bin, &data, &root);
        Cluster {
            port,
            ca_cert: cert,
        }
    }

    async fn create_database(&self) -> PgDatabase {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, made with
/// `openssl` in `dir`, readable by the server only. Not a CA's (TLS
/// clients refuse a CA certificate as a server's): it is its own root.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let mut openssl = Command::new("openssl");
    openssl
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    run(openssl, "openssl req -x509", None);
    let mut chmod = Command::new("chmod");
    chmod.arg("600").arg(&key);
    run(chmod, "chmod", None);
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres").arg(&cert).arg(&key);
        run(chown, "chown", None);
    }
    (cert, key)
}

/// Stops the cluster and removes its directory once this process is
/// gone, whether it returned, panicked or was killed.
// Never waited for: it outlives this process on purpose.
#[allow(clippy::zombie_processes)]
fn spawn_reaper(bin: &Path, data: &Path, root: &Path) {
    let pg_ctl = format!(
        "'{}' -D '{}' stop -m immediate",
        bin.join("pg_ctl").display(),
        data.display()
    );
    let stop = if is_root() {
        format!("runuser -u postgres -- {pg_ctl}")
    } else {
        pg_ctl
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        root = root.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster's reaper");
}

fn cluster(durable: bool) -> Option<&'static Cluster> {
    static FAST: OnceLock<Option<Cluster>> = OnceLock::new();
    static DURABLE: OnceLock<Option<Cluster>> = OnceLock::new();
    let cell = if durable { &DURABLE } else { &FAST };
    cell.get_or_init(|| match bin_dir() {
            Some(bin) => Some(Cluster::start(bin, durable)),
            None if under_ci() => panic!(
                "PostgreSQL is required under CI=true: install Debian's postgresql package (.ci/run does)"
            ),
            None => {
                eprintln!(
                    "PostgreSQL tests skipped: no initdb in /usr/lib/postgresql/*/bin or on PATH \
                     (install Debian's postgresql package to run them)"
                );
                None
            }
        })
        .as_ref()
}

/// A fresh database on the shared test cluster; None (the test skips)
/// only when PostgreSQL is not installed and CI is not set.
pub async fn database() -> Option<PgDatabase> {
    database_on(false).await
}

/// A fresh database on a cluster with PostgreSQL's durable defaults
/// (fsync on), for benchmarks.
pub async fn durable_database() -> Option<PgDatabase> {
    database_on(true).await
}

async fn database_on(durable: bool) -> Option<PgDatabase> {
    let cluster = tokio::task::spawn_blocking(move || cluster(durable))
        .await
        .expect("starting the test cluster")?;
    Some(cluster.create_database().await)
}
