//! Executing a run: the pure state machine that decides (`machine`) and
//! the async driver that carries its decisions out.

pub mod machine;
