//! Where Cargo put the workspace's binaries: beside the running test or
//! bench executable's `deps/` directory, the place `CARGO_BIN_EXE_*`
//! names. A package's own integration tests get its binaries built by
//! Cargo before they run; a bench that wants the release binaries has them
//! built first.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{} not found: build the binaries first with\n    cargo build{} --bins -p retake-server -p retake-cli", path.display(), if *release { " --release" } else { "" })]
pub struct MissingBinary {
    pub path: PathBuf,
    release: bool,
}

/// The binary `name` (`retake-server`, `retake`) of the running
/// executable's build profile.
pub fn path(name: &str) -> Result<PathBuf, MissingBinary> {
    let exe = std::env::current_exe().expect("the running executable's path");
    // target/PROFILE/deps/EXE: the binaries are in target/PROFILE.
    let mut dir = exe.parent().expect("the executable's directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("the profile directory");
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(MissingBinary {
            release: dir.ends_with("release"),
            path,
        })
    }
}
