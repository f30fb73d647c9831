//! Which process executes the runs of a database. SQLite keeps concurrent
//! writers consistent, but a run must be driven by one engine at a time:
//! two drivers of one run would both start its nodes and both write its
//! final state. Every process that executes runs holds an advisory lock on
//! a file beside the database (`retake.db.lock` for `retake.db`):
//!
//! - `retake-server` holds it exclusively for as long as it serves: it
//!   resumes every unfinished run, so nothing else may drive any of them;
//! - the `retake` command's embedded engine holds it exclusively while it
//!   drives a run it picked up from the database (answering or cancelling
//!   a waiting run), and shared while it drives runs it started itself,
//!   so several `retake run` commands can share a database.
//!
//! Commands that only read (`retake runs`, `debug`, `trace`, …) take no
//! lock. The lock is `flock(2)`'s (through `std::fs::File::try_lock`): the
//! kernel releases it when its process ends, however it ends, so a killed
//! server leaves nothing to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// How a process holds a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Driving runs it started; others may do the same.
    Shared,
    /// Driving any run of the database; nobody else executes runs.
    Exclusive,
}

/// Why a database could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DbLockError {
    /// Another process executes runs from the database.
    #[error("the database {} is in use by another retake process", db.display())]
    Held { db: PathBuf },
    /// The lock file could not be opened or locked.
    #[error("cannot lock the database {} ({}): {source}", db.display(), lock.display())]
    Io {
        db: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DbLock {
    _file: File,
    mode: LockMode,
}

impl DbLock {
    /// The lock file of the database at `db`: beside it, with `.lock`
    /// appended to its name. A database reached through a symbolic link
    /// has the lock file of the file the link points to.
    pub fn lock_path(db: &Path) -> PathBuf {
        let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
        let mut name = db.as_os_str().to_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the database at `db` in `mode`, or says why not
    /// without waiting.
    pub fn try_acquire(db: &Path, mode: LockMode) -> Result<Self, DbLockError> {
        let lock = Self::lock_path(db);
        let io = |source| DbLockError::Io {
            db: db.to_path_buf(),
            lock: lock.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        let taken = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match taken {
            Ok(()) => Ok(Self { _file: file, mode }),
            Err(TryLockError::WouldBlock) => Err(DbLockError::Held {
                db: db.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_everyone_and_shared_only_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("retake.db");
        std::fs::write(&db, b"").unwrap();
        let first = DbLock::try_acquire(&db, LockMode::Exclusive).unwrap();
        assert_eq!(first.mode(), LockMode::Exclusive);
        for mode in [LockMode::Exclusive, LockMode::Shared] {
            let err = DbLock::try_acquire(&db, mode).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "the database {} is in use by another retake process",
                    db.display()
                )
            );
        }
        drop(first);
        let a = DbLock::try_acquire(&db, LockMode::Shared).unwrap();
        let _b = DbLock::try_acquire(&db, LockMode::Shared).unwrap();
        assert!(matches!(
            DbLock::try_acquire(&db, LockMode::Exclusive),
            Err(DbLockError::Held { .. })
        ));
        drop(a);
        drop(_b);
        DbLock::try_acquire(&db, LockMode::Exclusive).unwrap();
        assert!(dir.path().join("retake.db.lock").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_the_database_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("retake.db");
        std::fs::write(&db, b"").unwrap();
        let link = dir.path().join("other.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let _held = DbLock::try_acquire(&db, LockMode::Exclusive).unwrap();
        assert!(matches!(
            DbLock::try_acquire(&link, LockMode::Shared),
            Err(DbLockError::Held { .. })
        ));
    }
}
