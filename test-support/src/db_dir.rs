//! Temporary directories for a test's database file and server log.

use std::path::{Path, PathBuf};

/// A temporary directory, removed when dropped, that holds `retake.db` and
/// `server.log`. One made with [`DbDir::kept_on_failure`] is kept (and
/// named on stderr) when dropped by a panicking test, so the files that
/// explain the failure survive it.
pub struct DbDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    keep_on_failure: bool,
}

impl DbDir {
    pub fn new() -> DbDir {
        DbDir::from(tempfile::tempdir().expect("create a temporary directory"))
    }

    /// A directory named `PREFIX…` that outlives a failing test.
    pub fn kept_on_failure(prefix: &str) -> DbDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create a temporary directory");
        let mut dir = DbDir::from(dir);
        dir.keep_on_failure = true;
        dir
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the database file goes.
    pub fn db(&self) -> PathBuf {
        self.path.join("retake.db")
    }

    /// Where a server process writes its log.
    pub fn log(&self) -> PathBuf {
        self.path.join("server.log")
    }

    /// The directory itself, for a test that hands it on (to restart a
    /// server on the same database).
    pub fn into_temp_dir(mut self) -> tempfile::TempDir {
        self.dir.take().expect("the directory is still owned")
    }
}

impl Default for DbDir {
    fn default() -> Self {
        DbDir::new()
    }
}

impl From<tempfile::TempDir> for DbDir {
    fn from(dir: tempfile::TempDir) -> DbDir {
        DbDir {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            keep_on_failure: false,
        }
    }
}

impl Drop for DbDir {
    fn drop(&mut self) {
        if self.keep_on_failure
            && std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("test files kept in {}", dir.keep().display());
        }
    }
}
