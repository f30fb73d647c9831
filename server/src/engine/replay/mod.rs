//! Replay: `plan` decides, purely, which nodes of a finished run run
//! again, which are reused by reference and which take an override;
//! `start` records the new run in one transaction and hands it to the
//! driver. Rules in docs/replay.md.

mod plan;
mod start;

pub use plan::{ReplayChanges, ReplayPlan, plan_replay};
pub use start::ReplayRequest;
