//! The runner's calls to its process's `ProcessObject`. Each is a journaled
//! call: a replay answers it from the journal, and the object applies it
//! once, whatever happens to the endpoint in between.

use restate_process_registry::restate::wire::{AttachTarget, ClaimRequest};
use restate_process_registry::{
    LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEventAppendRequest, ProcessEventAppendResult,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessRecord, ProcessStarted, WaitState,
};
use restate_sdk::prelude::*;

use crate::input::Input;
use crate::process_object::ProcessObjectClient;

/// Calls to one process's `ProcessObject` from a `ProcessRunner` run.
pub(crate) struct ObjectCalls<'a> {
    ctx: &'a WorkflowContext<'a>,
    process_id: String,
}

impl<'a> ObjectCalls<'a> {
    /// Calls on `process_id`'s object, journaled in `ctx`.
    pub(crate) fn new(ctx: &'a WorkflowContext<'a>, process_id: &str) -> Self {
        Self {
            ctx,
            process_id: process_id.to_owned(),
        }
    }

    fn object(&self) -> ProcessObjectClient<'a> {
        self.ctx
            .object_client::<ProcessObjectClient>(self.process_id.clone())
    }

    /// The current incarnation's workflow key and the row, in one round
    /// trip (both calls are issued before either is awaited).
    pub(crate) async fn target_and_row(
        &self,
    ) -> Result<(AttachTarget, Option<ProcessRecord>), TerminalError> {
        let target = self.object().attach_target().call();
        let row = self.object().get().call();
        let target = target.await?.into_inner();
        Ok((target, row.await?.into_inner()))
    }

    /// `ProcessObject.get`: the row as it is now.
    pub(crate) async fn row(&self) -> Result<Option<ProcessRecord>, TerminalError> {
        Ok(self.object().get().call().await?.into_inner())
    }

    /// `ProcessObject.claim_lease`.
    pub(crate) async fn claim_lease(
        &self,
        owner: LeaseOwnerIdentity,
        lease_ttl_ms: u64,
    ) -> Result<ProcessLeaseClaimOutcome, TerminalError> {
        let request = ClaimRequest {
            owner,
            lease_ttl_ms,
        };
        let outcome = self.object().claim_lease(Input(request)).call().await?;
        Ok(outcome.into_inner())
    }

    /// `ProcessObject.record_first_started` (refused while another owner holds a live lease).
    pub(crate) async fn record_first_started(
        &self,
        started: ProcessStarted,
    ) -> Result<ProcessRecord, TerminalError> {
        let record = self
            .object()
            .record_first_started(Input(started))
            .call()
            .await?;
        Ok(record.into_inner())
    }

    /// `ProcessObject.append`.
    pub(crate) async fn append(
        &self,
        request: ProcessEventAppendRequest,
    ) -> Result<ProcessEventAppendResult, TerminalError> {
        let result = self.object().append(Input(request)).call().await?;
        Ok(result.into_inner())
    }

    /// `ProcessObject.set_wait`.
    pub(crate) async fn set_wait(&self, wait: WaitState) -> Result<ProcessRecord, TerminalError> {
        let record = self.object().set_wait(Input(wait)).call().await?;
        Ok(record.into_inner())
    }

    /// `ProcessObject.clear_wait`.
    pub(crate) async fn clear_wait(&self) -> Result<ProcessRecord, TerminalError> {
        Ok(self.object().clear_wait().call().await?.into_inner())
    }

    /// `ProcessObject.complete`: records the outcome (attach, waiters and
    /// the directory see it).
    pub(crate) async fn complete(
        &self,
        output: ProcessAwaitOutput,
    ) -> Result<ProcessRecord, TerminalError> {
        let record = self.object().complete(Input(output)).call().await?;
        Ok(record.into_inner())
    }

    /// `ProcessObject.complete_lease`: releases the lease (stale is a no-op).
    pub(crate) async fn complete_lease(
        &self,
        completion: ProcessLeaseCompletion,
    ) -> Result<(), TerminalError> {
        self.object()
            .complete_lease(Input(completion))
            .call()
            .await?;
        Ok(())
    }
}
