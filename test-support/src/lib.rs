//! What retake's test suites and benchmarks share, so that each exists once:
//!
//! - [`in_process`]: a real server (`retake_server::serve`) inside the test
//!   process on 127.0.0.1:0, real gRPC over TCP.
//! - [`process`]: the `retake-server` binary as a child process, for what
//!   only a separate process shows (kill -9, SIGTERM, a second server on the
//!   same file, an environment of its own).
//! - [`binary`]: where Cargo put the workspace's binaries.
//! - [`db_dir`]: temporary directories holding a test's database and logs.
//! - [`client`]: the generated clients, connected, with the calls tests make
//!   most; [`inspect`]: reading what a run recorded.
//! - [`cli`]: the `retake` CLI's clients against an embedded or served engine.
//! - [`fake_http`]: scripted HTTP services on loopback that record what they
//!   receive; [`openai`], [`anthropic`] and [`a2a`]: the providers' real wire
//!   formats for them to answer with; [`flaky_llm`]: a Chat Completions
//!   service that logs every invocation outside the database and fails some
//!   on purpose, for the fault-injection tests.
//! - [`raw_codec`]: gRPC calls with bodies no generated client can send.
//! - [`sqlite`]: looks at a database file from outside the server.
//! - [`postgres`]: a throw-away PostgreSQL cluster, a database per test.
//! - [`rng`]: a seeded generator for randomised tests.
//! - [`worker`]: a worker written from the `.proto`, for `worker://` tests.
//! - [`workflows`]: workflow YAML used by several suites.

pub mod a2a;
pub mod anthropic;
pub mod binary;
pub mod cli;
pub mod client;
pub mod db_dir;
pub mod fake_http;
pub mod flaky_llm;
pub mod in_process;
pub mod inspect;
pub mod openai;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod raw_codec;
pub mod rng;
pub mod sqlite;
pub mod worker;
pub mod workflows;

pub use client::Client;
pub use db_dir::DbDir;
pub use raw_codec::RawCodec;
