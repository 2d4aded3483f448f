//! The watched decorator: bumps the change hub on every mutation and feeds
//! appended events to an optional sink.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ProcessChangeHub, ProcessEventSink};
use crate::error::ProcessResult;
use crate::model::{
    AbandonRequest, DurabilityTier, LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventAppendResult, ProcessExternalRef,
    ProcessHandleDescriptor, ProcessHandleGrant, ProcessHandleGrantEntry, ProcessLease,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessListFilter, ProcessPruneReport,
    ProcessRecord, ProcessRegistration, ProcessSessionDeleteReport, ProcessStarted, SessionScope,
    WaitState,
};
use crate::registry::ProcessRegistry;

/// Wraps `inner` so in-process waiters wake on its changes; the pair of
/// [`WatchedProcessRegistry::new`] and its [`hub`](WatchedProcessRegistry::hub).
pub fn watch_process_registry(
    inner: Arc<dyn ProcessRegistry>,
) -> (Arc<dyn ProcessRegistry>, ProcessChangeHub) {
    into_pair(WatchedProcessRegistry::new(inner))
}

/// Like [`watch_process_registry`], also emitting every appended event to
/// `sink` (best effort; see [`ProcessEventSink`]).
pub fn watch_process_registry_with_sink(
    inner: Arc<dyn ProcessRegistry>,
    sink: Option<Arc<dyn ProcessEventSink>>,
) -> (Arc<dyn ProcessRegistry>, ProcessChangeHub) {
    let watched = WatchedProcessRegistry::new(inner);
    into_pair(match sink {
        Some(sink) => watched.with_sink(sink),
        None => watched,
    })
}

fn into_pair(watched: WatchedProcessRegistry) -> (Arc<dyn ProcessRegistry>, ProcessChangeHub) {
    let hub = watched.hub().clone();
    (Arc::new(watched), hub)
}

/// The watched decorator: a [`ProcessRegistry`] that bumps its own
/// [`ProcessChangeHub`] on every successful mutation and feeds appended
/// events to an optional [`ProcessEventSink`]. The hub belongs to the
/// registry, so a waiter can never watch a hub the writes do not bump.
/// Clones share the inner registry, the hub and the sink.
#[derive(Clone)]
pub struct WatchedProcessRegistry {
    inner: Arc<dyn ProcessRegistry>,
    hub: ProcessChangeHub,
    sink: Option<Arc<dyn ProcessEventSink>>,
}

impl std::fmt::Debug for WatchedProcessRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedProcessRegistry")
            .field("durability", &self.inner.durability_tier())
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl WatchedProcessRegistry {
    /// Watches `inner` with a fresh hub and no sink.
    pub fn new(inner: Arc<dyn ProcessRegistry>) -> Self {
        Self {
            inner,
            hub: ProcessChangeHub::new(),
            sink: None,
        }
    }

    /// Also emits every appended event to `sink` (best effort).
    pub fn with_sink(mut self, sink: Arc<dyn ProcessEventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The hub this registry bumps.
    pub fn hub(&self) -> &ProcessChangeHub {
        &self.hub
    }

    /// The registry being watched (writes through it bump nothing).
    pub fn get_ref(&self) -> &Arc<dyn ProcessRegistry> {
        &self.inner
    }

    /// The registry being watched, dropping the hub and sink.
    pub fn into_inner(self) -> Arc<dyn ProcessRegistry> {
        self.inner
    }
}

impl WatchedProcessRegistry {
    /// Passes a result through, bumping `process_id` when it succeeded.
    fn bump<T>(&self, process_id: &str, result: ProcessResult<T>) -> ProcessResult<T> {
        if result.is_ok() {
            self.hub.notify(process_id);
        }
        result
    }
}

// Every method, provided ones too, delegates to the inner registry: an
// inherited default would silently replace the inner registry's own answer
// (e.g. its durability tier, or its one-read event count).
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ProcessRegistry for WatchedProcessRegistry {
    async fn register_process(
        &self,
        registration: ProcessRegistration,
    ) -> ProcessResult<ProcessRecord> {
        let process_id = registration.id.clone();
        let result = self.inner.register_process(registration).await;
        self.bump(&process_id, result)
    }

    async fn set_external_ref(
        &self,
        process_id: &str,
        external_ref: ProcessExternalRef,
    ) -> ProcessResult<ProcessRecord> {
        let result = self.inner.set_external_ref(process_id, external_ref).await;
        self.bump(process_id, result)
    }

    async fn grant_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
        descriptor: ProcessHandleDescriptor,
    ) -> ProcessResult<ProcessHandleGrant> {
        let result = self
            .inner
            .grant_handle(session_scope, process_id, descriptor)
            .await;
        self.bump(process_id, result)
    }

    async fn revoke_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<()> {
        let result = self.inner.revoke_handle(session_scope, process_id).await;
        self.bump(process_id, result)
    }

    async fn transfer_handle_grants(
        &self,
        from_scope: &SessionScope,
        to_scope: &SessionScope,
        process_ids: &[String],
    ) -> ProcessResult<()> {
        self.inner
            .transfer_handle_grants(from_scope, to_scope, process_ids)
            .await?;
        process_ids.iter().for_each(|id| self.hub.notify(id));
        Ok(())
    }

    async fn list_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        self.inner.list_handle_grants(session_scope).await
    }

    async fn handle_grants_for_process(
        &self,
        process_id: &str,
    ) -> ProcessResult<Vec<ProcessHandleGrant>> {
        self.inner.handle_grants_for_process(process_id).await
    }

    async fn delete_session_process_state(
        &self,
        session_id: &str,
    ) -> ProcessResult<ProcessSessionDeleteReport> {
        let report = self.inner.delete_session_process_state(session_id).await?;
        // The report names neither the ended processes that lost grants
        // nor the rows whose wake target was cleared, so every watched row
        // is bumped: each changed row is among them, and a row that did not
        // change only re-reads.
        self.hub.notify_all();
        Ok(report)
    }

    async fn append_event(
        &self,
        process_id: &str,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult> {
        let result = self.inner.append_event(process_id, request).await?;
        self.hub.notify(process_id);
        // The write is durable already; the sink only observes it. A
        // declared-terminal type is emitted too (see `ProcessEventSink`).
        if let Some(sink) = &self.sink {
            sink.emit(&result.event).await;
        }
        Ok(result)
    }

    async fn events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.inner.events_after(process_id, after_sequence).await
    }

    async fn wake_events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.inner
            .wake_events_after(process_id, after_sequence)
            .await
    }

    async fn complete_process(
        &self,
        process_id: &str,
        await_output: ProcessAwaitOutput,
    ) -> ProcessResult<ProcessRecord> {
        // Written through the inner registry: the sink never sees this
        // terminal event (see `ProcessEventSink`).
        let result = self.inner.complete_process(process_id, await_output).await;
        self.bump(process_id, result)
    }

    async fn record_first_started(
        &self,
        process_id: &str,
        started: ProcessStarted,
    ) -> ProcessResult<ProcessRecord> {
        let result = self.inner.record_first_started(process_id, started).await;
        self.bump(process_id, result)
    }

    async fn request_process_abandon(
        &self,
        process_id: &str,
        request: AbandonRequest,
    ) -> ProcessResult<ProcessRecord> {
        let result = self
            .inner
            .request_process_abandon(process_id, request)
            .await;
        self.bump(process_id, result)
    }

    async fn set_process_wait(
        &self,
        process_id: &str,
        wait: WaitState,
    ) -> ProcessResult<ProcessRecord> {
        let result = self.inner.set_process_wait(process_id, wait).await;
        self.bump(process_id, result)
    }

    async fn clear_process_wait(&self, process_id: &str) -> ProcessResult<ProcessRecord> {
        let result = self.inner.clear_process_wait(process_id).await;
        self.bump(process_id, result)
    }

    async fn get_process(&self, process_id: &str) -> Option<ProcessRecord> {
        self.inner.get_process(process_id).await
    }

    async fn try_get_process(&self, process_id: &str) -> ProcessResult<Option<ProcessRecord>> {
        self.inner.try_get_process(process_id).await
    }

    async fn list_processes(
        &self,
        filter: &ProcessListFilter,
    ) -> ProcessResult<Vec<ProcessRecord>> {
        self.inner.list_processes(filter).await
    }

    async fn ack_wake(&self, process_id: &str, sequence: u64) -> ProcessResult<()> {
        let result = self.inner.ack_wake(process_id, sequence).await;
        self.bump(process_id, result)
    }

    async fn list_non_terminal(&self) -> ProcessResult<Vec<ProcessRecord>> {
        self.inner.list_non_terminal().await
    }

    async fn claim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        let result = self
            .inner
            .claim_process_lease(process_id, owner, lease_ttl_ms)
            .await;
        self.bump(process_id, result)
    }

    async fn reclaim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        observed_holder: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        let result = self
            .inner
            .reclaim_process_lease(process_id, owner, observed_holder, lease_ttl_ms)
            .await;
        self.bump(process_id, result)
    }

    async fn renew_process_lease(
        &self,
        lease: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLease> {
        let result = self.inner.renew_process_lease(lease, lease_ttl_ms).await;
        self.bump(&lease.process_id, result)
    }

    async fn get_process_lease(&self, process_id: &str) -> ProcessResult<Option<ProcessLease>> {
        self.inner.get_process_lease(process_id).await
    }

    async fn complete_process_lease(
        &self,
        completion: &ProcessLeaseCompletion,
    ) -> ProcessResult<()> {
        let result = self.inner.complete_process_lease(completion).await;
        self.bump(&completion.process_id, result)
    }

    async fn prune_terminal_processes(
        &self,
        cutoff_epoch_ms: u64,
    ) -> ProcessResult<ProcessPruneReport> {
        // Pruned rows are terminal, so their waiters have already resolved.
        self.inner.prune_terminal_processes(cutoff_epoch_ms).await
    }

    fn durability_tier(&self) -> DurabilityTier {
        self.inner.durability_tier()
    }

    async fn list_live_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        self.inner.list_live_handle_grants(session_scope).await
    }

    async fn has_handle_grant(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<bool> {
        self.inner.has_handle_grant(session_scope, process_id).await
    }

    async fn count_events_through(
        &self,
        process_id: &str,
        event_type: &str,
        up_to_sequence: u64,
    ) -> ProcessResult<u64> {
        self.inner
            .count_events_through(process_id, event_type, up_to_sequence)
            .await
    }

    async fn recent_events(
        &self,
        process_id: &str,
        limit: usize,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.inner.recent_events(process_id, limit).await
    }
}
