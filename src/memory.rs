//! The embedded registry: every row in this process's memory.
//!
//! One mutex guards the whole state, so every call is atomic and calls on
//! the same process are totally ordered. Decisions come from [`crate::rules`].

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::driver::{LivenessProbe, LocalLiveness};
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    AbandonRequest, DurabilityTier, LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventAppendResult, ProcessExternalRef,
    ProcessHandleDescriptor, ProcessHandleGrant, ProcessHandleGrantEntry, ProcessLease,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessListFilter, ProcessPruneReport,
    ProcessRecord, ProcessRegistration, ProcessSessionDeleteReport, ProcessStarted, ProcessSummary,
    SessionScope, WaitState,
};
use crate::registry::ProcessRegistry;
use crate::rules::append::{self, AppendPlan, AppendWrite, CompletionPlan, Prior};
use crate::rules::grants::{self, grant_for, SessionDeleteTally};
use crate::rules::lease::{self, LeaseLedger};
use crate::rules::limits::check_key;
use crate::rules::validate::{check_transfer, Validate};
use crate::rules::{self, prune, registration, wakes};

/// Everything stored about one process.
#[derive(Debug)]
struct StoredProcess {
    record: ProcessRecord,
    events: Vec<ProcessEvent>,
    replay_keys: HashMap<String, u64>,
    /// Unacknowledged wake events and the scope each was delivered to.
    unacked_wakes: BTreeMap<u64, Option<SessionScope>>,
    lease: LeaseLedger,
    /// Grants by scope id.
    grants: BTreeMap<String, ProcessHandleGrant>,
}

impl StoredProcess {
    fn new(record: ProcessRecord) -> Self {
        Self {
            record,
            events: Vec::new(),
            replay_keys: HashMap::new(),
            unacked_wakes: BTreeMap::new(),
            lease: LeaseLedger::default(),
            grants: BTreeMap::new(),
        }
    }

    fn event(&self, sequence: u64) -> Option<&ProcessEvent> {
        usize::try_from(sequence)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|index| self.events.get(index))
    }

    fn next_sequence(&self) -> u64 {
        self.events.len() as u64 + 1
    }
}

/// The in-memory [`ProcessRegistry`]: the embedded default and the
/// reference the conformance suite is checked against. Cheap to clone;
/// clones share state.
#[derive(Clone)]
pub struct InMemoryProcessRegistry {
    state: Arc<Mutex<BTreeMap<String, StoredProcess>>>,
    /// The lease ledger (fence high-water only) of every pruned id that was
    /// ever leased, so a re-registered id continues its fencing tokens.
    /// One small entry per such id, for the registry's life: the price of
    /// tokens that never go backwards (the Restate registry keeps the same
    /// in the pruned object).
    pruned_fences: Arc<Mutex<HashMap<String, LeaseLedger>>>,
    clock: Arc<dyn Clock>,
    liveness: Arc<dyn LivenessProbe>,
    tokens: Arc<TokenSource>,
}

impl std::fmt::Debug for InMemoryProcessRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryProcessRegistry")
            .finish_non_exhaustive()
    }
}

/// Lease tokens unique to this registry: a random nonce and a counter.
struct TokenSource {
    nonce: u64,
    counter: AtomicU64,
}

impl TokenSource {
    /// The nonce comes from the operating system's random source, so two
    /// registries (say, before and after a restart) never mint the same
    /// token; should that source not answer, from std's hasher keys, which
    /// it seeded for this thread.
    fn new() -> Self {
        let nonce = getrandom::u64().unwrap_or_else(|_| RandomState::new().hash_one(0u8));
        Self {
            nonce,
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("lease-{:x}-{n}", self.nonce)
    }
}

impl Default for InMemoryProcessRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryProcessRegistry {
    /// An empty registry on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty registry on the given clock (e.g. a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::default(),
            pruned_fences: Arc::default(),
            clock,
            liveness: Arc::new(LocalLiveness::new()),
            tokens: Arc::new(TokenSource::new()),
        }
    }

    /// Proves lease holders dead with `liveness` (default: this host's
    /// process table, [`LocalLiveness`]); `reclaim_process_lease` takes a
    /// live lease over only on that proof.
    pub fn with_liveness(mut self, liveness: Arc<dyn LivenessProbe>) -> Self {
        self.liveness = liveness;
        self
    }

    fn pruned_fences(&self) -> MutexGuard<'_, HashMap<String, LeaseLedger>> {
        self.pruned_fences
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, StoredProcess>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on what is stored for one process, under the lock.
    fn with_process<T>(
        &self,
        process_id: &str,
        f: impl FnOnce(&mut StoredProcess, u64) -> ProcessResult<T>,
    ) -> ProcessResult<T> {
        let mut state = self.lock();
        let stored = state
            .get_mut(process_id)
            .ok_or_else(|| ProcessError::unknown(process_id))?;
        f(stored, self.clock.now_ms())
    }

    /// Applies a row change that may be an idempotent no-op.
    fn change_row(
        &self,
        process_id: &str,
        change: impl FnOnce(&ProcessRecord, u64) -> ProcessResult<Option<ProcessRecord>>,
    ) -> ProcessResult<ProcessRecord> {
        self.with_process(process_id, |stored, now| {
            if let Some(changed) = change(&stored.record, now)? {
                stored.record = changed;
            }
            Ok(stored.record.clone())
        })
    }
}

#[async_trait]
impl ProcessRegistry for InMemoryProcessRegistry {
    async fn register_process(
        &self,
        registration: ProcessRegistration,
    ) -> ProcessResult<ProcessRecord> {
        registration.validate()?;
        let hash = registration::registration_hash(&registration)?;
        let mut state = self.lock();
        if let Some(existing) = state.get(&registration.id) {
            registration::check_reregistration(&existing.record, &hash)?;
            return Ok(existing.record.clone());
        }
        let record = registration::new_record(registration, hash, self.clock.now_ms());
        let mut stored = StoredProcess::new(record.clone());
        if let Some(fence) = self.pruned_fences().remove(&record.id) {
            stored.lease = fence;
        }
        state.insert(record.id.clone(), stored);
        Ok(record)
    }

    async fn set_external_ref(
        &self,
        process_id: &str,
        external_ref: ProcessExternalRef,
    ) -> ProcessResult<ProcessRecord> {
        external_ref.validate()?;
        self.change_row(process_id, |record, now| {
            rules::record::set_external_ref(record, external_ref, now)
        })
    }

    async fn grant_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
        descriptor: ProcessHandleDescriptor,
    ) -> ProcessResult<ProcessHandleGrant> {
        session_scope.validate()?;
        descriptor.validate()?;
        self.with_process(process_id, |stored, _| {
            let grant = grant_for(session_scope, process_id, descriptor);
            let upsert = stored.grants.contains_key(&grant.scope_id);
            grants::check_capacity(process_id, stored.grants.len(), upsert)?;
            stored.grants.insert(grant.scope_id.clone(), grant.clone());
            Ok(grant)
        })
    }

    async fn revoke_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<()> {
        session_scope.validate()?;
        self.with_process(process_id, |stored, _| {
            stored.grants.remove(&session_scope.id());
            Ok(())
        })
    }

    async fn transfer_handle_grants(
        &self,
        from_scope: &SessionScope,
        to_scope: &SessionScope,
        process_ids: &[String],
    ) -> ProcessResult<()> {
        check_transfer(from_scope, to_scope, process_ids)?;
        let (from_id, to_id) = (from_scope.id(), to_scope.id());
        let mut state = self.lock();
        for process_id in process_ids {
            let stored = state
                .get(process_id)
                .ok_or_else(|| ProcessError::unknown(process_id))?;
            if !stored.grants.contains_key(&from_id) {
                return Err(grants::not_held(from_scope, process_id));
            }
        }
        if from_id == to_id {
            return Ok(());
        }
        for process_id in process_ids {
            if let Some(stored) = state.get_mut(process_id) {
                if let Some(grant) = stored.grants.remove(&from_id) {
                    let moved = grant_for(to_scope, process_id, grant.descriptor);
                    stored.grants.insert(to_id.clone(), moved);
                }
            }
        }
        Ok(())
    }

    async fn list_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        session_scope.validate()?;
        let scope_id = session_scope.id();
        let state = self.lock();
        Ok(state
            .values()
            .filter_map(|stored| {
                let grant = stored.grants.get(&scope_id)?;
                Some((grant.clone(), stored.record.clone()))
            })
            .collect())
    }

    async fn handle_grants_for_process(
        &self,
        process_id: &str,
    ) -> ProcessResult<Vec<ProcessHandleGrant>> {
        self.with_process(process_id, |stored, _| {
            Ok(stored.grants.values().cloned().collect())
        })
    }

    async fn delete_session_process_state(
        &self,
        session_id: &str,
    ) -> ProcessResult<ProcessSessionDeleteReport> {
        check_key("session id", session_id)?;
        let mut tally = SessionDeleteTally::default();
        let now = self.clock.now_ms();
        let mut state = self.lock();
        for (process_id, stored) in state.iter_mut() {
            let held: Vec<String> = stored
                .grants
                .values()
                .filter(|grant| grant.session_id == session_id)
                .map(|grant| grant.scope_id.clone())
                .collect();
            let terminal = stored.record.is_terminal();
            for scope_id in held {
                stored.grants.remove(&scope_id);
                tally.revoked(process_id, stored.grants.len(), terminal);
            }
            if let Some(cleared) =
                rules::record::clear_wake_target_of(&stored.record, session_id, now)
            {
                stored.record = cleared;
            }
            // Wake events stay, each with the scope it was aimed at: see
            // `SessionDeleteTally`.
        }
        Ok(tally.report(session_id))
    }

    async fn append_event(
        &self,
        process_id: &str,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult> {
        request.validate()?;
        self.with_process(process_id, |stored, now| {
            let prior = match request
                .replay_key
                .as_ref()
                .and_then(|key| stored.replay_keys.get(key))
            {
                None => Prior::Fresh,
                Some(&sequence) => stored
                    .event(sequence)
                    .map_or(Prior::Lost(sequence), |event| Prior::Found(event.clone())),
            };
            let plan =
                append::plan_append(&stored.record, &request, prior, stored.next_sequence(), now)?;
            let write = match plan {
                AppendPlan::Replayed(answer) => return Ok(*answer),
                AppendPlan::Write(write) => write,
            };
            let result = write.result();
            let AppendWrite {
                event,
                pending_wake,
                ended,
                ..
            } = *write;
            if let Some(scope) = pending_wake {
                stored.unacked_wakes.insert(event.sequence, scope);
            }
            if let Some(key) = &event.replay_key {
                stored.replay_keys.insert(key.clone(), event.sequence);
            }
            if let Some(ended) = ended {
                stored.record = ended;
            }
            stored.events.push(event);
            Ok(result)
        })
    }

    async fn events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.with_process(process_id, |stored, _| {
            let start = usize::try_from(after_sequence)
                .unwrap_or(usize::MAX)
                .min(stored.events.len());
            Ok(stored.events[start..].to_vec())
        })
    }

    async fn wake_events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.with_process(process_id, |stored, _| {
            Ok(stored
                .events
                .iter()
                .filter(|event| {
                    event.sequence > after_sequence
                        && stored.unacked_wakes.contains_key(&event.sequence)
                })
                .cloned()
                .collect())
        })
    }

    async fn complete_process(
        &self,
        process_id: &str,
        await_output: ProcessAwaitOutput,
    ) -> ProcessResult<ProcessRecord> {
        await_output.validate()?;
        self.with_process(process_id, |stored, now| {
            match append::plan_completion(
                &stored.record,
                await_output,
                stored.next_sequence(),
                now,
            )? {
                CompletionPlan::AlreadyDone => {}
                CompletionPlan::Write { event, record } => {
                    stored.events.push(event);
                    stored.record = *record;
                }
            }
            Ok(stored.record.clone())
        })
    }

    async fn record_first_started(
        &self,
        process_id: &str,
        started: ProcessStarted,
    ) -> ProcessResult<ProcessRecord> {
        started.validate()?;
        self.with_process(process_id, |stored, now| {
            let lease = stored.lease.state(now);
            if let Some(changed) =
                rules::record::record_first_started(&stored.record, lease, started, now)?
            {
                stored.record = changed;
            }
            Ok(stored.record.clone())
        })
    }

    async fn request_process_abandon(
        &self,
        process_id: &str,
        request: AbandonRequest,
    ) -> ProcessResult<ProcessRecord> {
        request.validate()?;
        self.change_row(process_id, |record, now| {
            rules::record::request_abandon(record, request, now)
        })
    }

    async fn set_process_wait(
        &self,
        process_id: &str,
        wait: WaitState,
    ) -> ProcessResult<ProcessRecord> {
        wait.validate()?;
        self.change_row(process_id, |record, now| {
            rules::record::set_wait(record, wait, now)
        })
    }

    async fn clear_process_wait(&self, process_id: &str) -> ProcessResult<ProcessRecord> {
        self.change_row(process_id, |record, now| {
            Ok(rules::record::clear_wait(record, now))
        })
    }

    async fn get_process(&self, process_id: &str) -> Option<ProcessRecord> {
        self.lock()
            .get(process_id)
            .map(|stored| stored.record.clone())
    }

    async fn list_processes(
        &self,
        filter: &ProcessListFilter,
    ) -> ProcessResult<Vec<ProcessRecord>> {
        filter.validate()?;
        Ok(self
            .lock()
            .values()
            .filter(|stored| filter.matches(&stored.record))
            .map(|stored| stored.record.clone())
            .collect())
    }

    async fn ack_wake(&self, process_id: &str, sequence: u64) -> ProcessResult<()> {
        self.with_process(process_id, |stored, _| {
            wakes::check_ack(process_id, sequence, stored.event(sequence))?;
            stored.unacked_wakes.remove(&sequence);
            Ok(())
        })
    }

    async fn list_non_terminal(&self) -> ProcessResult<Vec<ProcessRecord>> {
        Ok(self
            .lock()
            .values()
            .filter(|stored| !stored.record.is_terminal())
            .map(|stored| stored.record.clone())
            .collect())
    }

    async fn claim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        self.with_process(process_id, |stored, now| {
            let outcome = lease::claim(
                &stored.record,
                stored.lease.state(now),
                owner,
                lease_ttl_ms,
                || self.tokens.next(),
            )?;
            stored.lease.store_claim(&outcome);
            Ok(outcome)
        })
    }

    async fn reclaim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        observed_holder: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        observed_holder.validate()?;
        self.with_process(process_id, |stored, now| {
            let outcome = lease::reclaim(
                &stored.record,
                stored.lease.state(now),
                owner,
                observed_holder,
                lease_ttl_ms,
                |holder| self.liveness.is_provably_dead_for(&holder.owner, owner),
                || self.tokens.next(),
            )?;
            stored.lease.store_claim(&outcome);
            Ok(outcome)
        })
    }

    async fn renew_process_lease(
        &self,
        lease: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLease> {
        lease.validate()?;
        self.with_process(&lease.process_id, |stored, now| {
            let renewed = lease::renew(stored.lease.state(now), lease, lease_ttl_ms)?;
            stored.lease.lease = Some(renewed.clone());
            Ok(renewed)
        })
    }

    async fn get_process_lease(&self, process_id: &str) -> ProcessResult<Option<ProcessLease>> {
        Ok(self
            .lock()
            .get(process_id)
            .and_then(|stored| stored.lease.lease.clone()))
    }

    async fn complete_process_lease(
        &self,
        completion: &ProcessLeaseCompletion,
    ) -> ProcessResult<()> {
        completion.validate()?;
        self.with_process(&completion.process_id, |stored, _| {
            stored.lease.release(completion);
            Ok(())
        })
    }

    async fn prune_terminal_processes(
        &self,
        cutoff_epoch_ms: u64,
    ) -> ProcessResult<ProcessPruneReport> {
        let mut report = ProcessPruneReport::default();
        let mut state = self.lock();
        let mut fences = self.pruned_fences();
        state.retain(|id, stored| {
            let prune = prune::prunable(&ProcessSummary::of(&stored.record), cutoff_epoch_ms);
            if prune {
                report.pruned_processes += 1;
                report.pruned_events += stored.events.len() as u64;
                if let Some(fence) = stored.lease.after_prune() {
                    fences.insert(id.clone(), fence);
                }
            }
            !prune
        });
        Ok(report)
    }

    fn durability_tier(&self) -> DurabilityTier {
        DurabilityTier::Inline
    }

    async fn count_events_through(
        &self,
        process_id: &str,
        event_type: &str,
        up_to_sequence: u64,
    ) -> ProcessResult<u64> {
        check_key("event type", event_type)?;
        self.with_process(process_id, |stored, _| {
            let end = usize::try_from(up_to_sequence)
                .unwrap_or(usize::MAX)
                .min(stored.events.len());
            Ok(stored.events[..end]
                .iter()
                .filter(|e| e.event_type == event_type)
                .count() as u64)
        })
    }

    async fn recent_events(
        &self,
        process_id: &str,
        limit: usize,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        self.with_process(process_id, |stored, _| {
            let start = stored.events.len().saturating_sub(limit);
            Ok(stored.events[start..].to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::TokenSource;

    /// Registries made at the same instant (the clock nonce's collision)
    /// still mint different tokens.
    #[test]
    fn two_registries_never_share_a_token() {
        let (a, b) = (TokenSource::new(), TokenSource::new());
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.next(), b.next());
        assert_ne!(a.next(), a.next());
    }
}
