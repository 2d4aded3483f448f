//! [`RestateProcessRuns`]: the run handle for a registry whose endpoint
//! runs process bodies itself (`bind_services_with_runner`).

use async_trait::async_trait;
use tokio::task::JoinSet;

use crate::driver::ProcessRunHandle;
use crate::error::{ProcessError, ProcessResult};
use crate::model::{ProcessInput, ProcessRecord, RecoveryDisposition};
use crate::registry::ProcessRegistry;
use crate::restate::registry::{start_run, RestateProcessRegistry};

/// How many start requests are in flight at once.
const CONCURRENT_STARTS: usize = 16;

/// Hands pending rows to the engine's `ProcessRunner` instead of running
/// them here.
///
/// [`claim_and_run_pending`](ProcessRunHandle::claim_and_run_pending) lists
/// the non-terminal rows and, for each engine row that is not
/// `ExternallyOwned`, asks its `ProcessObject` to start the runner run of
/// its current incarnation (idempotent: one run per incarnation, however
/// often it is asked). It returns once the runs are **submitted**; the
/// engine runs them, durably, and callers wait for outcomes with
/// `await_terminal` (best through [`RestateProcessAttach`]):
///
/// ```no_run
/// # use std::sync::Arc;
/// # use restate_process_registry::*;
/// # fn setup(registry: RestateProcessRegistry) -> ProcessWorkDriver {
/// let attach = Arc::new(RestateProcessAttach::new(registry.clone()));
/// let runs = Arc::new(RestateProcessRuns::new(registry.clone()));
/// ProcessWorkDriver::new(Arc::new(registry), runs).with_attach(attach)
/// # }
/// ```
///
/// The endpoint must bind the runner; otherwise every start is refused
/// as [`ProcessError::Unavailable`].
///
/// [`RestateProcessAttach`]: crate::RestateProcessAttach
#[derive(Clone)]
pub struct RestateProcessRuns {
    registry: RestateProcessRegistry,
}

impl std::fmt::Debug for RestateProcessRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestateProcessRuns")
            .field("registry", &self.registry)
            .finish()
    }
}

impl RestateProcessRuns {
    /// Submits runs through the same ingress as `registry`.
    pub fn new(registry: RestateProcessRegistry) -> Self {
        Self { registry }
    }

    /// Asks for `process_id`'s run; `false` when its row is not one a
    /// runner runs (terminal, external input, `ExternallyOwned`).
    pub async fn start(&self, process_id: &str) -> ProcessResult<bool> {
        start_run(&self.registry, process_id).await
    }
}

/// Whether the engine's runner runs this row.
fn runnable(record: &ProcessRecord) -> bool {
    matches!(record.input, ProcessInput::Engine { .. })
        && record.disposition != RecoveryDisposition::ExternallyOwned
}

#[async_trait]
impl ProcessRunHandle for RestateProcessRuns {
    async fn claim_and_run_pending(&self) -> ProcessResult<()> {
        let rows = self.registry.list_non_terminal().await?;
        let mut pending = rows.into_iter().filter(runnable).map(|row| row.id);
        let mut starts = JoinSet::new();
        let mut first_error = None;
        loop {
            while starts.len() < CONCURRENT_STARTS {
                let Some(process_id) = pending.next() else {
                    break;
                };
                let runs = self.clone();
                starts.spawn(async move { runs.start(&process_id).await });
            }
            let Some(joined) = starts.join_next().await else {
                break;
            };
            let started = joined.unwrap_or_else(|err| {
                Err(ProcessError::unavailable_because(
                    "run start task failed",
                    err,
                ))
            });
            match started {
                // Ended or pruned since it was listed: nothing to run.
                Ok(_) | Err(ProcessError::UnknownProcess { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, "starting a process run failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
