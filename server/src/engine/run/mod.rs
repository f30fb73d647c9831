//! Executing a run. `machine` decides, purely; `driver` carries out its
//! decisions: `prepare` renders a node, `attempt` runs one attempt of its
//! agent, `journal` records every change, `outputs` keeps what downstream
//! nodes still need, and `stop` fails a run that cannot go on.

mod attempt;
mod driver;
pub mod journal;
pub mod machine;
mod outputs;
mod prepare;
mod stop;

pub use driver::{RunDriver, RunStart};
