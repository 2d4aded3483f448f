//! The `ProcessRegistry` contract: point reads and writes over process rows.

use async_trait::async_trait;

use crate::error::ProcessResult;
use crate::model::{
    AbandonRequest, DurabilityTier, LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventAppendResult, ProcessExternalRef,
    ProcessHandleDescriptor, ProcessHandleGrant, ProcessHandleGrantEntry, ProcessLease,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessListFilter, ProcessPruneReport,
    ProcessRecord, ProcessRegistration, ProcessSessionDeleteReport, ProcessStarted, SessionScope,
    WaitState,
};

/// A durability-neutral store of process rows.
///
/// Methods are point reads and writes; waiting lives on
/// [`ProcessAwaiter`](crate::ProcessAwaiter) and
/// [`ProcessWorkDriver`](crate::ProcessWorkDriver). Every implementation must
/// pass the conformance suite (`testing` feature). A refused call changes
/// nothing. Times are the registry's clock, never the caller's.
#[async_trait]
pub trait ProcessRegistry: Send + Sync {
    /// Stores a new `Running` row. The same registration again returns the
    /// stored row; a different one under the same id is a conflict.
    async fn register_process(
        &self,
        registration: ProcessRegistration,
    ) -> ProcessResult<ProcessRecord>;

    /// Stores the external reference once; the same one again is a no-op,
    /// a different one a conflict.
    async fn set_external_ref(
        &self,
        process_id: &str,
        external_ref: ProcessExternalRef,
    ) -> ProcessResult<ProcessRecord>;

    /// Grants `session_scope` a handle on the process (upsert).
    ///
    /// Errors: `UnknownProcess`; `InvalidInput` for a malformed scope or
    /// descriptor, or a new scope past the per-process grant limit.
    async fn grant_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
        descriptor: ProcessHandleDescriptor,
    ) -> ProcessResult<ProcessHandleGrant>;

    /// Revokes the scope's grant; revoking an absent grant succeeds.
    ///
    /// Errors: `InvalidInput` for a malformed scope.
    async fn revoke_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<()>;

    /// Moves the listed grants from one scope to another. Fails before
    /// moving anything when `from_scope` does not hold one of them.
    ///
    /// Errors: `InvalidInput` when `from_scope` does not hold a listed
    /// grant, for malformed scopes, or past the transfer size limit.
    async fn transfer_handle_grants(
        &self,
        from_scope: &SessionScope,
        to_scope: &SessionScope,
        process_ids: &[String],
    ) -> ProcessResult<()>;

    /// The scope's grants with their rows, sorted by process id.
    async fn list_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>>;

    /// Every grant on one process, sorted by scope id.
    async fn handle_grants_for_process(
        &self,
        process_id: &str,
    ) -> ProcessResult<Vec<ProcessHandleGrant>>;

    /// Revokes every grant of the session and its frames and clears wake
    /// targets aimed at it. Rows, logs and wake events stay (undelivered
    /// wakes stay pending). Orphaned / preserved list only live processes.
    async fn delete_session_process_state(
        &self,
        session_id: &str,
    ) -> ProcessResult<ProcessSessionDeleteReport>;

    /// Appends one validated event; a repeated replay key returns the first
    /// event (and its wake delivery) with `deduplicated: true` and writes
    /// nothing. Terminal types and `process.cancel_requested` need a replay
    /// key. A wake-carrying event with a target answers a delivery every
    /// time; deliveries that should reach a session once share a `wake_id`.
    async fn append_event(
        &self,
        process_id: &str,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult>;

    /// Every event with a sequence above `after_sequence`, ascending.
    async fn events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>>;

    /// Wake-carrying events above `after_sequence` not yet acknowledged.
    async fn wake_events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>>;

    /// Writes the terminal event and status in one step and clears any wait.
    /// The same outcome again returns the row; a different one is a conflict.
    async fn complete_process(
        &self,
        process_id: &str,
        await_output: ProcessAwaitOutput,
    ) -> ProcessResult<ProcessRecord>;

    /// Records that execution began; the first writer wins, later starts
    /// return the row unchanged. No lease is needed.
    ///
    /// Errors: `UnknownProcess`; `AlreadyTerminal` for a terminal row that
    /// never started; `LeaseSuperseded` while another owner holds a live
    /// lease; `InvalidInput` for a malformed owner.
    async fn record_first_started(
        &self,
        process_id: &str,
        started: ProcessStarted,
    ) -> ProcessResult<ProcessRecord>;

    /// Sets the standing abandon request; the first writer wins. Refused on
    /// a terminal row.
    async fn request_process_abandon(
        &self,
        process_id: &str,
        request: AbandonRequest,
    ) -> ProcessResult<ProcessRecord>;

    /// Sets the process's wait. Refused on a terminal row.
    async fn set_process_wait(
        &self,
        process_id: &str,
        wait: WaitState,
    ) -> ProcessResult<ProcessRecord>;

    /// Clears the process's wait (a no-op when none is set).
    async fn clear_process_wait(&self, process_id: &str) -> ProcessResult<ProcessRecord>;

    /// The row, or `None` when unknown. A store that can fail also
    /// overrides [`try_get_process`](Self::try_get_process).
    async fn get_process(&self, process_id: &str) -> Option<ProcessRecord>;

    /// The row, `Ok(None)` when unknown, and an error when the store could
    /// not be asked, so a transport failure is never read as "unknown".
    async fn try_get_process(&self, process_id: &str) -> ProcessResult<Option<ProcessRecord>> {
        Ok(self.get_process(process_id).await)
    }

    /// Rows passing the filter, sorted by process id.
    async fn list_processes(&self, filter: &ProcessListFilter)
        -> ProcessResult<Vec<ProcessRecord>>;

    /// Acknowledges a delivered wake; repeating it succeeds.
    async fn ack_wake(&self, process_id: &str, sequence: u64) -> ProcessResult<()>;

    /// Every non-terminal row in process-id order: the recovery worklist.
    async fn list_non_terminal(&self) -> ProcessResult<Vec<ProcessRecord>>;

    /// Claims the lease on a non-terminal process. A live lease held by
    /// someone else is `Ok(Busy)`, not an error.
    ///
    /// A TTL of 0 is allowed: the lease is acquired already lapsed. Fencing
    /// tokens grow for the process id forever, also across prune and
    /// re-registration.
    ///
    /// Errors: `UnknownProcess`; `AlreadyTerminal`; `InvalidInput` for a
    /// TTL over 30 days or a malformed owner.
    async fn claim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome>;

    /// Takes over a lease: a free or lapsed one like a claim; a live one only
    /// when the stored holder is still the observed one (owner, lease token,
    /// fence: compare-and-set) and is provably dead for `owner` by its
    /// recorded liveness (same host id and boot, its process gone or
    /// replaced). A live holder, one on another host or boot, or an opaque
    /// one is `Ok(Busy)`, as is a lease that moved on since it was observed.
    ///
    /// Errors: `UnknownProcess`; `AlreadyTerminal`; `InvalidInput` for a
    /// bad TTL or owner, or an observed lease of another process.
    async fn reclaim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        observed_holder: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome>;

    /// Extends a live lease the caller still holds.
    ///
    /// Errors (both say "missing or expired"): `LeaseSuperseded` when the
    /// stored lease is another one (or none); `LeaseExpired` when it is this
    /// one but lapsed; `InvalidInput` for a bad TTL.
    async fn renew_process_lease(
        &self,
        lease: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLease>;

    /// The stored lease, possibly expired; `None` when unleased or unknown.
    async fn get_process_lease(&self, process_id: &str) -> ProcessResult<Option<ProcessLease>>;

    /// Releases the lease when the token still matches; otherwise a no-op.
    async fn complete_process_lease(
        &self,
        completion: &ProcessLeaseCompletion,
    ) -> ProcessResult<()>;

    /// Deletes terminal rows last updated before the cutoff, with everything
    /// attached to them. Live rows are never touched.
    async fn prune_terminal_processes(
        &self,
        cutoff_epoch_ms: u64,
    ) -> ProcessResult<ProcessPruneReport>;

    /// What survives a crash; `Inline` unless overridden.
    fn durability_tier(&self) -> DurabilityTier {
        DurabilityTier::Inline
    }

    /// The scope's grants on non-terminal processes.
    async fn list_live_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        let mut grants = self.list_handle_grants(session_scope).await?;
        grants.retain(|(_, record)| !record.is_terminal());
        Ok(grants)
    }

    /// Whether the exact scope holds a grant on the process; `false` for
    /// an unknown or pruned id (it holds no grants), never an error.
    async fn has_handle_grant(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<bool> {
        let grants = self.handle_grants_for_process(process_id).await;
        crate::rules::grants::scope_holds(session_scope, grants)
    }

    /// Events of `event_type` with sequence at most `up_to_sequence`.
    async fn count_events_through(
        &self,
        process_id: &str,
        event_type: &str,
        up_to_sequence: u64,
    ) -> ProcessResult<u64> {
        let events = self.events_after(process_id, 0).await?;
        Ok(events
            .iter()
            .take_while(|event| event.sequence <= up_to_sequence)
            .filter(|event| event.event_type == event_type)
            .count() as u64)
    }

    /// The last `limit` events, ascending.
    async fn recent_events(
        &self,
        process_id: &str,
        limit: usize,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        let mut events = self.events_after(process_id, 0).await?;
        let skip = events.len().saturating_sub(limit);
        events.drain(..skip);
        Ok(events)
    }
}
