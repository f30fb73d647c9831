//! One retake-server per database: a second one on the same file refuses
//! to start, and the lock of a server killed with SIGKILL goes with it.

use retake_test_support::DbDir;
use retake_test_support::process::{ServerCommand, ServerProcess};
use std::time::{Duration, Instant};

/// Starts a server and waits for its "listening on" line.
fn listening(db: &std::path::Path) -> ServerProcess {
    ServerCommand::new(db).spawn()
}

/// Runs a server expected to refuse to start; returns its stderr.
fn refused(db: &std::path::Path) -> String {
    let mut child = ServerCommand::new(db)
        .command()
        .spawn()
        .expect("start retake-server");
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
    let dir = DbDir::new();
    let db = dir.db();
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

    first.kill9();
    let mut again = listening(&db);
    again.kill9();
}
