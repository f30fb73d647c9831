//! The shared kit (retake-test-support), under the names the remote-agent
//! tests use: fake HTTP services on 127.0.0.1:0 that record what they
//! receive and answer from a script, and a real retake-server process (so
//! its environment can hold a secret without touching the test process's)
//! driven through the generated client.
#![allow(unused_imports)]

pub use retake_test_support::fake_http::{Fake, Recorded, Reply};
pub use retake_test_support::inspect::{deltas, node, status};
pub use retake_test_support::process::ProcessServer as Server;
