//! The host's code that actually runs a process.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ProcessResult;
use crate::model::{
    ProcessAwaitOutput, ProcessEventAppendRequest, ProcessEventAppendResult, ProcessLease,
    ProcessRecord,
};
use crate::registry::ProcessRegistry;

/// One leased run of a process, handed to the executor.
#[derive(Clone)]
pub struct ProcessExecution {
    /// The row as it was when the run started.
    pub record: ProcessRecord,
    /// The lease the run holds; the worker renews it while the run lasts.
    pub lease: ProcessLease,
    registry: Arc<dyn ProcessRegistry>,
}

impl std::fmt::Debug for ProcessExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessExecution")
            .field("record", &self.record)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl ProcessExecution {
    pub(crate) fn new(
        record: ProcessRecord,
        lease: ProcessLease,
        registry: Arc<dyn ProcessRegistry>,
    ) -> Self {
        Self {
            record,
            lease,
            registry,
        }
    }

    /// The registry the worker runs against.
    pub fn registry(&self) -> &Arc<dyn ProcessRegistry> {
        &self.registry
    }

    /// Appends an event to this process (e.g. a progress milestone).
    pub async fn append(
        &self,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult> {
        self.registry.append_event(&self.record.id, request).await
    }
}

/// Runs processes for a [`DurableProcessWorker`](crate::DurableProcessWorker).
///
/// Return the outcome to record (a domain failure is
/// `Ok(ProcessAwaitOutput::Failure { .. })`). An `Err` records nothing: the
/// row stays non-terminal and a later pass may run it again.
#[async_trait]
pub trait ProcessExecutor: Send + Sync {
    /// Runs one process to its outcome.
    async fn execute(&self, execution: ProcessExecution) -> ProcessResult<ProcessAwaitOutput>;
}
