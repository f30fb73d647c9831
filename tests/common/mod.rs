//! The shared kit (retake-test-support), under the names these tests use:
//! a real retake server on 127.0.0.1:0 with a temporary database and the
//! generated clients connected to it.
#![allow(unused_imports)]

pub use retake_test_support::RawCodec;
pub use retake_test_support::in_process::{TestServer, start, start_in, start_with};
pub use retake_test_support::inspect::{micros, node, run_status, status};
