//! The `retake-server` binary as a child process on 127.0.0.1:0: for what
//! only a separate process shows (kill -9, SIGTERM, a second server on the
//! same file, an environment of its own holding a secret).

use crate::binary;
use crate::client::Client;
use crate::db_dir::DbDir;
use retake::v1 as pb;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The line the server prints once it listens; scripts that pass port 0
/// read the address from it.
pub const LISTENING: &str = "retake-server listening on ";

/// How long a server may take to open its database and listen.
const STARTUP: Duration = Duration::from_secs(60);

/// `retake-server --listen 127.0.0.1:0 --db DB` with `RUST_LOG=warn`, and
/// whatever else a test adds.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    binary: PathBuf,
    db: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    log: Option<PathBuf>,
}

impl ServerCommand {
    /// The server of this build profile over database `db`; panics when
    /// the binary has not been built.
    pub fn new(db: impl Into<PathBuf>) -> ServerCommand {
        let binary = binary::path("retake-server").unwrap_or_else(|e| panic!("{e}"));
        ServerCommand {
            binary,
            db: db.into(),
            args: Vec::new(),
            env: vec![("RUST_LOG".into(), "warn".into())],
            log: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> ServerCommand {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> ServerCommand {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the process (`RUST_LOG` too).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ServerCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Appends the server's output to `path` rather than letting its
    /// stderr through to the test's.
    pub fn log(mut self, path: impl Into<PathBuf>) -> ServerCommand {
        self.log = Some(path.into());
        self
    }

    /// The command itself with stdout and stderr piped, for a server that
    /// is expected not to start (its output is the test's to read).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--listen", "127.0.0.1:0", "--db"])
            .arg(&self.db)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the server without waiting for it: it may still be opening
    /// the database or resuming runs.
    pub fn start(&self) -> ServerProcess {
        let mut cmd = self.command();
        let log = self.log.as_ref().map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
        });
        match &log {
            Some(file) => cmd.stderr(file.try_clone().expect("log file handle")),
            None => cmd.stderr(Stdio::inherit()),
        };
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready, listening) = mpsc::channel();
        std::thread::spawn(move || read_stdout(stdout, log, ready));
        ServerProcess {
            child: Some(child),
            listening,
            addr: None,
            log: self.log.clone(),
            spawned,
        }
    }

    /// Starts the server and waits until it listens.
    pub fn spawn(&self) -> ServerProcess {
        let mut server = self.start();
        server.wait_listening();
        server
    }
}

/// Reads the address from the first line of the server's stdout, then
/// keeps the pipe drained (into the log, if any) so the server never blocks
/// on a full one.
fn read_stdout(
    stdout: ChildStdout,
    log: Option<File>,
    ready: mpsc::Sender<Result<String, String>>,
) {
    let mut out = BufReader::new(stdout);
    let mut line = String::new();
    let first = match out.read_line(&mut line) {
        Ok(0) => Err("it exited without printing its address".to_string()),
        Ok(_) => line
            .trim_end()
            .strip_prefix(LISTENING)
            .map(|addr| addr.trim().to_string())
            .ok_or_else(|| format!("its first line is not {LISTENING:?}…: {line:?}")),
        Err(e) => Err(format!("cannot read its output: {e}")),
    };
    // The receiver is gone only when the process was dropped unwaited-for.
    let _ = ready.send(first);
    // Past the first line the output is the log's; an error here means the
    // pipe or the log went away with the test.
    let _ = match log {
        Some(mut file) => std::io::copy(&mut out, &mut file),
        None => std::io::copy(&mut out, &mut std::io::sink()),
    };
}

/// A running `retake-server`, killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    listening: mpsc::Receiver<Result<String, String>>,
    addr: Option<String>,
    log: Option<PathBuf>,
    spawned: Instant,
}

impl ServerProcess {
    /// Waits (at most a minute) for the server to listen; panics, with the
    /// end of its log, when it does not.
    pub fn wait_listening(&mut self) -> &str {
        if self.addr.is_none() {
            let failure = match self.listening.recv_timeout(STARTUP) {
                Ok(Ok(addr)) => {
                    self.addr = Some(addr);
                    None
                }
                Ok(Err(why)) => Some(why),
                Err(_) => Some(format!(
                    "it did not print its address within {} s",
                    STARTUP.as_secs()
                )),
            };
            if let Some(why) = failure {
                self.reap();
                panic!("retake-server did not start: {why}\n{}", self.log_tail());
            }
        }
        self.addr.as_deref().expect("listening")
    }

    /// `HOST:PORT` of a server that listens.
    pub fn addr(&self) -> &str {
        self.addr
            .as_deref()
            .expect("the server listens (ServerCommand::spawn or wait_listening)")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The generated clients, connected.
    pub async fn client(&self) -> Client {
        Client::connect(&self.url()).await
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// When the process was started.
    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .expect("the process is running")
            .try_wait()
            .expect("wait for retake-server")
    }

    /// SIGKILL, then reap the process. Returns the moment of the signal.
    pub fn kill9(&mut self) -> Instant {
        let mut child = self.child.take().expect("the process is running");
        let at = Instant::now();
        child.kill().expect("kill -9 retake-server");
        child.wait().expect("reap retake-server");
        at
    }

    fn log_tail(&self) -> String {
        match &self.log {
            Some(path) => format!("its log, {}:\n{}", path.display(), tail(path, 4000)),
            None => "(its stderr is above)".to_string(),
        }
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("the process is running")
    }

    /// Kills and reaps the process if it is still there; a process that
    /// has exited already makes both no-ops.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.reap();
    }
}

/// The last `max` bytes of a file, for failure messages.
pub fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// A server process on a database of its own with the generated clients
/// connected to it, for the remote-agent tests: its environment can hold a
/// secret without touching the test process's, it may send secrets to
/// loopback (where the fake providers are), and it logs at debug level to
/// `dir/server.log`, beside the database, where a search for the secret
/// finds it too.
pub struct ProcessServer {
    pub dir: DbDir,
    client: Client,
    _process: ServerProcess,
}

impl ProcessServer {
    pub async fn start(env: &[(&str, &str)]) -> ProcessServer {
        let dir = DbDir::new();
        let mut command = ServerCommand::new(dir.db())
            .args(["--allow-secret-host", "127.0.0.1"])
            .env("RUST_LOG", "debug,sqlx=warn,h2=info,hyper=info,tower=info")
            .log(dir.log());
        for (k, v) in env {
            command = command.env(k, v);
        }
        let process = command.spawn();
        let client = process.client().await;
        ProcessServer {
            dir,
            client,
            _process: process,
        }
    }

    /// Fails if `secret` is in any answer about the run or in any file of
    /// the server's directory: the database and the server's log.
    pub async fn assert_secret_absent(&mut self, run_id: &str, secret: &str) {
        let mut answers = String::new();
        let (run, nodes) = self.get(run_id).await;
        answers.push_str(&format!("{run:?}{nodes:?}"));
        let events = self.events(run_id, 0).await;
        answers.push_str(&format!("{events:?}"));
        let list = self
            .artifacts
            .list_artifacts(pb::ListArtifactsRequest {
                run_id: run_id.to_string(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListArtifacts")
            .into_inner();
        for a in &list.artifacts {
            answers.push_str(&self.content(&a.id).await);
        }
        answers.push_str(&format!("{list:?}"));
        let runs = self
            .runs
            .list_runs(pb::ListRunsRequest::default())
            .await
            .expect("ListRuns")
            .into_inner();
        answers.push_str(&format!("{runs:?}"));
        assert!(!answers.contains(secret), "the secret is in an RPC answer");
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is in {}",
                path.display()
            );
        }
    }
}

impl Deref for ProcessServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for ProcessServer {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}
