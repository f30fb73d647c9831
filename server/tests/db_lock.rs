//! One retake-server per database: a second one on the same file refuses
//! to start, and the lock of a server killed with SIGKILL goes with it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn server(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retake-server"));
    cmd.args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts a server and waits for its "listening on" line.
fn listening(db: &std::path::Path) -> Child {
    let mut child = server(db).spawn().expect("start retake-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("retake-server listening on "), "{line}");
    child
}

/// Runs a server expected to refuse to start; returns its stderr.
fn refused(db: &std::path::Path) -> String {
    let mut child = server(db).spawn().expect("start retake-server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second server did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "it never listened");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_server_on_a_database_refuses_and_a_killed_ones_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retake.db");
    let mut first = listening(&db);

    let err = refused(&db);
    assert!(
        err.contains(&format!(
            "the database {} is in use by another retake process",
            db.display()
        )),
        "{err}"
    );
    assert!(err.contains("--db"), "{err}");

    // Through another path to the same file too.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        assert!(
            refused(&link).contains("is in use by another retake process"),
            "a link leads to the same lock"
        );
    }

    first.kill().unwrap();
    first.wait().unwrap();
    let mut again = listening(&db);
    again.kill().unwrap();
    again.wait().unwrap();
}
