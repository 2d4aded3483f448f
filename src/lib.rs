#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod attach;
mod awaiter;
mod clock;
mod driver;
mod error;
mod memory;
mod model;
mod registry;
#[cfg(feature = "restate")]
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
pub use restate::{RestateProcessAttach, RestateProcessRegistry, RestateProcessRuns};
pub use watch::{
    watch_process_registry, watch_process_registry_with_sink, ProcessChangeHub, ProcessEventSink,
    WatchedProcessRegistry,
};

#[cfg(feature = "testing")]
pub mod testing;
