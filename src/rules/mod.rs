//! The registry's rules as pure functions over stored state.
//!
//! Every registry (in memory, inside Restate) loads what a call needs, asks
//! these functions what to do, and stores the answer. Keeping the decisions
//! here is what makes the implementations agree.

pub mod append;
pub mod grants;
pub mod lease;
pub mod limits;
pub mod prune;
pub mod record;
pub mod registration;
pub mod schema;
pub mod selector;
pub mod validate;
pub mod wakes;
