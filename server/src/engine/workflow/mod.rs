//! Workflow files (docs/workflows.md): parsing YAML or JSON into a validated,
//! topologically ordered `Workflow`. Validation collects every problem at
//! once, each with its node id and, where it can be found, its line.
//!
//! [`types`] holds what a workflow is made of, [`retry`] its nodes' retry
//! policy; [`parse`] reads the document (after [`guard`] has checked the
//! text), [`node`] each node's entry, and [`graph`] the dependencies.

mod graph;
mod guard;
mod node;
mod parse;
mod retry;
mod types;

pub use node::check_agent;
pub use parse::load;
pub use retry::{Backoff, RetryPolicy};
pub use types::{
    CompareOp, Condition, DEFAULT_DEADLINE_MS, Issue, LoadOptions, Loaded, Node, Workflow,
};

/// Loads `text` with no files, no variables and default options.
#[cfg(test)]
fn load_str(text: &str) -> Loaded {
    load(
        text,
        &Default::default(),
        &Default::default(),
        LoadOptions::default(),
    )
}
