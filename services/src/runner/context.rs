//! [`RunContext`]: what a [`ProcessBody`](super::ProcessBody) can do, all of
//! it journaled in the run: durable steps (see `step.rs`), durable sleep,
//! and registry access for its own process.

use restate_process_registry::{
    AbandonRequest, ProcessEventAppendRequest, ProcessEventAppendResult, ProcessInput,
    ProcessRecord, WaitState,
};
use restate_sdk::prelude::*;
use serde_json::Value;

use super::body::BodyError;
use super::calls::ObjectCalls;

/// A body's handle on its run: the process it runs, durable steps, and
/// journaled registry calls on that process's row.
pub struct RunContext<'a> {
    pub(super) ctx: &'a WorkflowContext<'a>,
    calls: &'a ObjectCalls<'a>,
    record: ProcessRecord,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<'a> RunContext<'a> {
    pub(super) fn new(
        ctx: &'a WorkflowContext<'a>,
        calls: &'a ObjectCalls<'a>,
        record: ProcessRecord,
    ) -> Self {
        Self { ctx, calls, record }
    }

    /// The process this run executes.
    pub fn process_id(&self) -> &str {
        &self.record.id
    }

    /// The row as it was when the run started (first start recorded).
    pub fn record(&self) -> &ProcessRecord {
        &self.record
    }

    /// The engine input's kind (runs only start for engine input).
    pub fn kind(&self) -> &str {
        match &self.record.input {
            ProcessInput::Engine { kind, .. } => kind,
            ProcessInput::External { .. } => "",
        }
    }

    /// The engine input's payload (`null` for any other input).
    pub fn payload(&self) -> &Value {
        match &self.record.input {
            ProcessInput::Engine { payload, .. } => payload,
            ProcessInput::External { .. } => &Value::Null,
        }
    }

    /// Appends an event to this process (`append_event`), e.g. a progress
    /// milestone. Model errors (an undeclared type, a bad payload) come
    /// back as permanent errors.
    pub async fn append(
        &self,
        request: ProcessEventAppendRequest,
    ) -> Result<ProcessEventAppendResult, BodyError> {
        Ok(self.calls.append(request).await?)
    }

    /// Marks this process as waiting (`set_process_wait`).
    pub async fn set_wait(&self, wait: WaitState) -> Result<ProcessRecord, BodyError> {
        Ok(self.calls.set_wait(wait).await?)
    }

    /// Clears this process's wait (`clear_process_wait`).
    pub async fn clear_wait(&self) -> Result<ProcessRecord, BodyError> {
        Ok(self.calls.clear_wait().await?)
    }

    /// The pending abandon request (`request_process_abandon`), if any: a
    /// journaled read of the row, so a body can stop between steps and
    /// return a `Cancelled` outcome.
    pub async fn abandon_requested(&self) -> Result<Option<AbandonRequest>, BodyError> {
        let row = self.calls.row().await?;
        Ok(row.and_then(|row| row.abandon_request))
    }
}
