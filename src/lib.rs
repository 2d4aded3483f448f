//! A durable process registry: the contract, its model and an in-memory registry.

pub mod clock;
mod error;
mod memory;
pub mod model;
mod registry;
pub mod rules;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ProcessError, ProcessResult};
pub use memory::InMemoryProcessRegistry;
pub use model::*;
pub use registry::ProcessRegistry;
