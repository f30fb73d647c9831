//! A full or read-only disk: nothing is acknowledged that is not stored,
//! the server recovers when space returns, and a database it cannot write
//! keeps it from starting.
//!
//! The tmpfs tests mount a small tmpfs, which needs root. Outside CI they
//! are skipped where mounting is not possible; under `CI=true` that is a
//! failure.

use retake::v1 as pb;
use retake::v1::run_service_client::RunServiceClient;
use retake_test_support::in_process::InProcessServer;
use retake_test_support::process::ServerCommand;
use retake_test_support::sqlite::assert_not_locked;
use retake_test_support::workflows::sleep_chain as chain;
use retake_test_support::{Client, DbDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(Self { dir });
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs (root is needed); under CI this test must run"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount read-only");
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).and_then(|_| f.flush()).is_ok() {}
        // Small writes too, so no block is left.
        while f.write_all(&[0u8; 512]).and_then(|_| f.flush()).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

struct Server {
    runs: RunServiceClient<Channel>,
    server: InProcessServer,
}

async fn start(settings: retake_server::Settings) -> Server {
    let server = InProcessServer::start(move |s| *s = settings).await;
    Server {
        runs: Client::connect(&server.url).await.runs,
        server,
    }
}

impl Server {
    async fn stop(self) {
        self.server.stop().await;
    }

    async fn start_run(&mut self, yaml: &str, filler: usize) -> Result<pb::Run, tonic::Status> {
        let variables = [("pad".to_string(), "x".repeat(filler))].into();
        self.runs
            .start_run(pb::StartRunRequest {
                workflow: yaml.into(),
                variables,
                files: Default::default(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().run.unwrap())
    }

    async fn get(&mut self, id: &str) -> Result<pb::Run, tonic::Status> {
        self.runs
            .get_run(pb::GetRunRequest {
                run_id: id.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().run.unwrap())
    }

    /// Follows the run to its end.
    async fn finish(&mut self, id: &str) -> pb::Run {
        let mut after = 0;
        // A stream may end early while the server retries writes; watch again.
        for _ in 0..600 {
            let run = self.get(id).await.unwrap();
            if matches!(
                pb::RunStatus::try_from(run.status).unwrap(),
                pb::RunStatus::Completed | pb::RunStatus::Failed | pb::RunStatus::Cancelled
            ) {
                return run;
            }
            if let Ok(stream) = self
                .runs
                .watch_run(pb::WatchRunRequest {
                    run_id: id.into(),
                    after_sequence: after,
                })
                .await
            {
                let mut stream = stream.into_inner();
                while let Ok(Some(Ok(item))) =
                    tokio::time::timeout(Duration::from_secs(1), stream.next()).await
                {
                    after = item.event.unwrap().sequence;
                }
            }
        }
        panic!("run {id} did not finish");
    }
}

const WORKFLOW: &str = "name: small\nnodes:\n  a:\n    agent: local://echo\n    inputs: {text: \"${user.pad}\"}\n    outputs: [result]\n";

/// Starts runs until the store refuses one; returns the acknowledged ids.
async fn start_until_full(server: &mut Server, filler: usize) -> Vec<String> {
    let mut acked = Vec::new();
    for _ in 0..400 {
        match server.start_run(WORKFLOW, filler).await {
            Ok(run) => acked.push(run.id),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("disk full"), "{status:?}");
                return acked;
            }
        }
    }
    panic!("the store never filled up");
}

#[tokio::test]
async fn a_page_cap_refuses_writes_cleanly_and_acknowledges_only_what_is_stored() {
    let dir = DbDir::new();
    let db = dir.db();
    let mut settings = retake_server::Settings::new(&db);
    settings.max_db_pages = Some(400);
    let mut server = start(settings.clone()).await;
    let acked = start_until_full(&mut server, 64 * 1024).await;
    assert!(!acked.is_empty());
    // Every later call is refused too: none is acknowledged unstored.
    for _ in 0..5 {
        let status = server.start_run(WORKFLOW, 64 * 1024).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    assert_not_locked(&db).await;
    for id in &acked {
        server.get(id).await.expect("an acknowledged run is stored");
    }
    server.stop().await;

    // Space returns (a larger cap): new runs are stored, old ones are there.
    settings.max_db_pages = Some(100_000);
    let mut server = start(settings).await;
    for id in &acked {
        let run = server.finish(id).await;
        assert_eq!(run.status, pb::RunStatus::Completed as i32);
    }
    let run = server.start_run(WORKFLOW, 10).await.unwrap();
    let run = server.finish(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    server.stop().await;
}

#[tokio::test]
async fn a_full_disk_pauses_runs_and_they_resume_when_space_returns() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let db = fs.path().join("retake.db");
    let mut settings = retake_server::Settings::new(&db);
    settings.disk_full_timeout = Duration::from_secs(120);
    let mut server = start(settings.clone()).await;
    let running = server.start_run(&chain(15, 100), 10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let filler = fs.fill();
    let acked = start_until_full(&mut server, 64 * 1024).await;
    for _ in 0..3 {
        let status = server.start_run(WORKFLOW, 64 * 1024).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    assert_not_locked(&db).await;
    // Paused while the disk is full, for longer than the chain needs.
    tokio::time::sleep(Duration::from_secs(2)).await;

    std::fs::remove_file(&filler).unwrap();
    let run = server.finish(&running.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32, "{run:?}");
    let fresh = server
        .start_run(WORKFLOW, 10)
        .await
        .expect("stored once space returns");
    server.finish(&fresh.id).await;
    server.stop().await;

    let mut server = start(settings).await;
    for id in acked.iter().chain([&running.id, &fresh.id]) {
        server
            .get(id)
            .await
            .expect("an acknowledged run survives a restart");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_experiment_cancelled_on_a_full_disk_ends_once_space_returns() {
    use retake::v1::experiment_service_client::ExperimentServiceClient;
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let db = fs.path().join("retake.db");
    let mut settings = retake_server::Settings::new(&db);
    settings.disk_full_timeout = Duration::from_secs(120);
    let mut server = start(settings).await;
    let mut sources = Vec::new();
    for _ in 0..4 {
        let run = server.start_run(WORKFLOW, 10).await.unwrap();
        server.finish(&run.id).await;
        sources.push(run.id);
    }
    let mut experiments = ExperimentServiceClient::connect(server.server.url.clone())
        .await
        .unwrap();
    // Each replay sleeps a second, one at a time.
    let started = experiments
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                run_ids: sources,
                ..Default::default()
            }),
            change: Some(pb::ExperimentChange {
                swaps: vec![pb::AgentSwap {
                    node_id: "a".into(),
                    agent: "local://sleep".into(),
                }],
                ..Default::default()
            }),
            concurrency: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Cancelled while nothing can be written: the pending items' ends
    // wait for space instead of stopping the experiment half-written.
    let filler = fs.fill();
    let cancel = tokio::spawn({
        let mut experiments = experiments.clone();
        let id = started.id.clone();
        async move {
            experiments
                .cancel_experiment(pb::CancelExperimentRequest { experiment_id: id })
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!cancel.is_finished(), "nothing is written yet");
    std::fs::remove_file(&filler).unwrap();
    let cancelled = cancel
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    assert_eq!(cancelled.status(), pb::ExperimentStatus::Cancelled);
    let p = cancelled.progress.unwrap();
    assert_eq!((p.pending, p.running, p.cancelled), (0, 0, 4), "{p:?}");
    server.stop().await;

    // As written.
    let server = start(retake_server::Settings::new(&db)).await;
    let stored = experiments_of(&server, &started.id).await;
    assert_eq!(stored.status(), pb::ExperimentStatus::Cancelled);
    server.stop().await;
}

async fn experiments_of(server: &Server, id: &str) -> pb::Experiment {
    retake::v1::experiment_service_client::ExperimentServiceClient::connect(
        server.server.url.clone(),
    )
    .await
    .unwrap()
    .get_experiment(pb::GetExperimentRequest {
        experiment_id: id.into(),
        include_comparison: false,
    })
    .await
    .unwrap()
    .into_inner()
    .experiment
    .unwrap()
}

#[tokio::test]
async fn a_run_stalled_past_the_timeout_fails_with_disk_full_as_its_cause() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let db = fs.path().join("retake.db");
    let mut settings = retake_server::Settings::new(&db);
    settings.disk_full_timeout = Duration::from_secs(1);
    let mut server = start(settings).await;
    let running = server.start_run(&chain(40, 50), 10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filler = fs.fill();
    start_until_full(&mut server, 64 * 1024).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::remove_file(&filler).unwrap();

    let run = server.finish(&running.id).await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32, "{run:?}");
    let cause = run.failure.unwrap().message;
    assert!(cause.contains("disk full"), "{cause}");
    server.stop().await;
}

#[tokio::test]
async fn a_database_that_cannot_be_written_stops_the_server_before_it_listens() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let db = fs.path().join("retake.db");
    let mut server = ServerCommand::new(&db).spawn();
    // A copy taken while the server runs has its -wal and -shm beside it,
    // as after a crash.
    let crashed = fs.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, crashed.join(format!("retake.db{suffix}"))).unwrap();
        }
    }
    server.kill9();
    fs.remount_read_only();

    for path in [db, crashed.join("retake.db")] {
        let out = ServerCommand::new(&path).command().output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stdout}{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(
            stderr.contains("cannot open database") && stderr.contains("writ"),
            "the message says why: {stderr}"
        );
    }
}
