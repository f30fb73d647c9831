//! The shared kit (retake-test-support), under the names these tests use:
//! the real engine (embedded, or served on 127.0.0.1:0) on a temporary
//! database, and small workflows written into the test's directory.
#![allow(unused_imports)]

pub use retake_test_support::cli::{
    Embedded, InterruptOnStart, Served, embedded, no_auth, served, served_tls, served_with,
};
pub use retake_test_support::inspect::node_kinds;
pub use retake_test_support::workflows::{FAILING, PIPELINE, SLOW, write};
