//! In-process change tracking: the change hub, the event sink and the
//! watched registry decorator that feeds both.

mod hub;
mod sink;
mod watched;

pub use hub::ProcessChangeHub;
pub use sink::ProcessEventSink;
pub use watched::{
    watch_process_registry, watch_process_registry_with_sink, WatchedProcessRegistry,
};
