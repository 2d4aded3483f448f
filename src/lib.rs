#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod attach;
mod awaiter;
mod clock;
mod digest;
mod driver;
mod error;
mod memory;
mod model;
mod registry;
// Reached through the root re-exports below; the module itself holds the
// wire format the services crate speaks.
#[cfg(feature = "restate")]
#[doc(hidden)]
pub mod restate;
// The decisions both registries share; public only for the services crate.
#[doc(hidden)]
pub mod rules;
mod watch;

pub use attach::ProcessAttach;
pub use awaiter::{ProcessAwaiter, AWAIT_BACKOFF_MAX, AWAIT_BACKOFF_MIN};
#[doc(hidden)]
pub use clock::unix_now_ms;
pub use clock::{Clock, ManualClock, SystemClock};
pub use driver::*;
pub use error::{ErrorCause, ProcessError, ProcessResult};
pub use memory::InMemoryProcessRegistry;
pub use model::*;
pub use registry::ProcessRegistry;
#[cfg(feature = "restate")]
pub use restate::{
    IngressOptions, ListCursor, RestateProcessAttach, RestateProcessRegistry, RestateProcessRuns,
    REATTACH_WINDOW,
};
pub use watch::{
    watch_process_registry, watch_process_registry_with_sink, ProcessChangeHub, ProcessEventSink,
    WatchedProcessRegistry,
};

#[cfg(feature = "testing")]
pub mod testing;
