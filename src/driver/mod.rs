//! Running pending rows and waiting on them: the work driver, the inline
//! worker, the executor it calls and the liveness proof it relies on.

mod executor;
mod liveness;
mod work_driver;
mod worker;

pub use executor::{ProcessExecution, ProcessExecutor};
pub use liveness::{host_name, local_owner, LivenessProbe, LocalLiveness};
pub use work_driver::{ProcessRunHandle, ProcessWorkDriver};
pub use worker::{DurableProcessWorker, DEFAULT_LEASE_TTL, DEFAULT_MAX_CONCURRENT_RUNS};
