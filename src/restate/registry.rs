//! [`RestateProcessRegistry`]: the [`ProcessRegistry`] contract over
//! Restate ingress.

use std::sync::Arc;

use async_trait::async_trait;
use restate_sdk::ingress::RequestTarget;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::driver::{LivenessProbe, LocalLiveness};
use crate::error::{ProcessError, ProcessResult};
use crate::model::{
    AbandonRequest, DurabilityTier, LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEvent,
    ProcessEventAppendRequest, ProcessEventAppendResult, ProcessExternalRef,
    ProcessHandleDescriptor, ProcessHandleGrant, ProcessHandleGrantEntry, ProcessLease,
    ProcessLeaseClaimOutcome, ProcessLeaseCompletion, ProcessListFilter, ProcessPruneReport,
    ProcessRecord, ProcessRegistration, ProcessSessionDeleteReport, ProcessStarted, SessionScope,
    WaitState,
};
use crate::registry::ProcessRegistry;
use crate::restate::contract::{
    process_coordinator, process_directory, process_object, session_grants,
};
use crate::restate::ingress::{Call, Ingress, IngressOptions};
use crate::restate::wire::{
    self, AttachTarget, ClaimRequest, CountRequest, EventsPage, EventsPageRequest, GrantRequest,
    GrantsPage, GrantsPageRequest, ListCursor, ListPage, ListPageRequest, ListedRow, Milestone,
    MilestoneRequest, ReclaimRequest, RenewRequest, RevokeRequest, TransferRequest, PAGE_LIMIT,
};
use crate::rules::limits::{check_key, check_process_id};
use crate::rules::validate::Validate;

/// The registry whose rows live in Restate virtual objects keyed by
/// process id, reached through ingress ([`DurabilityTier::Durable`]).
///
/// Every write carries a fresh idempotency key, reused when the transport
/// fails and the call is retried, so a lost response never applies a write
/// twice. Large reads come in pages. Model errors come back as the same
/// [`ProcessError`] variants the in-memory registry returns. Cheap to clone.
#[derive(Clone)]
pub struct RestateProcessRegistry {
    ingress: Ingress,
    liveness: Arc<dyn LivenessProbe>,
}

impl std::fmt::Debug for RestateProcessRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestateProcessRegistry")
            .field("ingress", &self.ingress.http().1.as_str())
            .finish()
    }
}

impl RestateProcessRegistry {
    /// A registry talking to the Restate ingress at `ingress_url`
    /// (e.g. `http://127.0.0.1:8080`). Does no I/O.
    pub fn connect(ingress_url: &str) -> ProcessResult<Self> {
        Self::connect_with(ingress_url, IngressOptions::default())
    }

    /// [`connect`](Self::connect) with its own request timeout and retry
    /// budget (see [`IngressOptions`]).
    pub fn connect_with(ingress_url: &str, options: IngressOptions) -> ProcessResult<Self> {
        Ok(Self {
            ingress: Ingress::connect(ingress_url, options)?,
            liveness: Arc::new(LocalLiveness::new()),
        })
    }

    /// Proves lease holders dead with `liveness` (default: this host's
    /// process table, [`LocalLiveness`]) when reclaiming: the verdict is
    /// this caller's, since the engine cannot see any host's processes.
    pub fn with_liveness(mut self, liveness: Arc<dyn LivenessProbe>) -> Self {
        self.liveness = liveness;
        self
    }

    pub(crate) fn ingress(&self) -> &Ingress {
        &self.ingress
    }

    /// A `ProcessObject` target; ids no registration could have are unknown.
    fn object(process_id: &str, handler: &str) -> ProcessResult<RequestTarget> {
        check_process_id(process_id).map_err(|_| ProcessError::unknown(process_id))?;
        Ok(RequestTarget::object(
            wire::PROCESS_OBJECT,
            process_id,
            handler,
        ))
    }

    async fn on<Req, Res>(
        &self,
        process_id: &str,
        handler: &str,
        input: &Req,
        kind: Call,
    ) -> ProcessResult<Res>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
        Res: DeserializeOwned + Send + 'static,
    {
        let target = Self::object(process_id, handler)?;
        self.ingress.call(target, input, kind).await
    }

    async fn on_empty<Res>(&self, process_id: &str, handler: &str, kind: Call) -> ProcessResult<Res>
    where
        Res: DeserializeOwned + Send + 'static,
    {
        let target = Self::object(process_id, handler)?;
        self.ingress.call_empty(target, kind).await
    }

    /// A write to the grant authority of `scope`'s session.
    async fn session<Req, Res>(
        &self,
        scope: &SessionScope,
        handler: &str,
        input: &Req,
    ) -> ProcessResult<Res>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
        Res: DeserializeOwned + Send + 'static,
    {
        let target = RequestTarget::object(wire::SESSION_GRANTS, &scope.session_id, handler);
        self.ingress.call(target, input, Call::Write).await
    }

    async fn coordinate<Req, Res>(&self, handler: &str, input: &Req) -> ProcessResult<Res>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
        Res: DeserializeOwned + Send + 'static,
    {
        let target = RequestTarget::service(wire::PROCESS_COORDINATOR, handler);
        self.ingress.call(target, input, Call::Write).await
    }

    /// The first page from `first` (called with `input`), then every
    /// following page from `handler`.
    async fn paged_events<Req>(
        &self,
        process_id: &str,
        first: &str,
        input: &Req,
        handler: &str,
    ) -> ProcessResult<Vec<ProcessEvent>>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
    {
        let mut page: EventsPage = self.on(process_id, first, input, Call::Read).await?;
        let mut events = std::mem::take(&mut page.events);
        while let Some(after_sequence) = page.next_after {
            let request = EventsPageRequest {
                after_sequence,
                limit: PAGE_LIMIT,
            };
            page = self.on(process_id, handler, &request, Call::Read).await?;
            events.append(&mut page.events);
        }
        Ok(events)
    }

    /// One page of one shard: the matching rows it names.
    async fn shard_page(
        &self,
        shard: u32,
        filter: Option<ProcessListFilter>,
        cursor: u64,
    ) -> ProcessResult<ListPage> {
        let target = RequestTarget::object(
            wire::PROCESS_DIRECTORY,
            shard.to_string(),
            process_directory::LIST,
        );
        let request = ListPageRequest {
            filter,
            cursor,
            limit: PAGE_LIMIT,
        };
        self.ingress.call(target, &request, Call::Read).await
    }

    /// One shard's rows matching `filter`, every page.
    async fn shard_rows(
        self,
        shard: u32,
        filter: Option<ProcessListFilter>,
    ) -> ProcessResult<Vec<ListedRow>> {
        let mut rows = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self.shard_page(shard, filter.clone(), cursor).await?;
            rows.extend(page.rows);
            match page.next_cursor {
                Some(next) => cursor = next,
                None => return Ok(rows),
            }
        }
    }

    /// The records of listed rows: inline ones as they are, the others read
    /// from their objects (rows pruned meanwhile are dropped).
    async fn records_of(&self, rows: Vec<ListedRow>) -> ProcessResult<Vec<ProcessRecord>> {
        let mut reads = JoinSet::new();
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            match row.record {
                Some(record) => records.push(record),
                None => {
                    let registry = self.clone();
                    reads.spawn(async move { registry.try_get_process(&row.id).await });
                }
            }
        }
        while let Some(joined) = reads.join_next().await {
            let read =
                joined.map_err(|err| ProcessError::unavailable_because("row read failed", err))?;
            records.extend(read?);
        }
        Ok(records)
    }

    /// Rows matching `filter` across every directory shard, by process id.
    async fn list(&self, filter: Option<ProcessListFilter>) -> ProcessResult<Vec<ProcessRecord>> {
        let mut shards = JoinSet::new();
        for shard in 0..wire::DIRECTORY_SHARDS {
            shards.spawn(self.clone().shard_rows(shard, filter.clone()));
        }
        let mut rows = Vec::new();
        while let Some(joined) = shards.join_next().await {
            let shard_rows = joined
                .map_err(|err| ProcessError::unavailable_because("list task failed", err))??;
            rows.extend(shard_rows);
        }
        let mut records = self.records_of(rows).await?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Every directory entry matching `filter` as the directory holds it
    /// (inline row or bare id), unsorted: for consistency checks.
    pub async fn directory_entries(
        &self,
        filter: &ProcessListFilter,
    ) -> ProcessResult<Vec<ListedRow>> {
        filter.validate()?;
        let mut rows = Vec::new();
        for shard in 0..wire::DIRECTORY_SHARDS {
            rows.extend(self.clone().shard_rows(shard, Some(filter.clone())).await?);
        }
        Ok(rows)
    }

    /// Puts `process_id`'s directory entry (and its wake target's index
    /// entry) again from its row, or removes the entry when no row exists:
    /// the repair `procreg check --repair` applies to a row the directory
    /// misses or misstates. Idempotent; answers whether the row exists.
    pub async fn reindex(&self, process_id: &str) -> ProcessResult<bool> {
        check_key("process id", process_id)?;
        let target = Self::object(process_id, process_object::REINDEX)?;
        self.ingress.call_empty(target, Call::Write).await
    }

    /// Every grant `session_id` holds, any scope: the session authority's
    /// own view, for consistency checks.
    pub async fn session_grants(&self, session_id: &str) -> ProcessResult<Vec<ProcessHandleGrant>> {
        check_key("session id", session_id)?;
        let mut grants = Vec::new();
        let mut cursor = 0u64;
        loop {
            let target =
                RequestTarget::object(wire::SESSION_GRANTS, session_id, session_grants::ALL);
            let page: GrantsPage = self.ingress.call(target, &cursor, Call::Read).await?;
            grants.extend(page.grants);
            match page.next_cursor {
                Some(next) => cursor = next,
                None => return Ok(grants),
            }
        }
    }

    /// The transfers out of `session_id` and the deletes of it that were
    /// begun and not completed (a coordinator cut off), for consistency
    /// checks.
    pub async fn pending_intents(&self, session_id: &str) -> ProcessResult<wire::PendingIntents> {
        check_key("session id", session_id)?;
        let target =
            RequestTarget::object(wire::SESSION_GRANTS, session_id, session_grants::PENDING);
        self.ingress.call_empty(target, Call::Read).await
    }

    /// The grants a transfer moved into `process_id`'s mirror that its
    /// destination has not confirmed: `(destination scope id, source
    /// session, transfer id)`, for consistency checks.
    pub async fn grant_transits(
        &self,
        process_id: &str,
    ) -> ProcessResult<Vec<(String, String, String)>> {
        self.on_empty(process_id, process_object::TRANSITS, Call::Read)
            .await
    }

    /// Completes (idempotently) every cut-off transfer out of `session_id`
    /// and delete of it, and says which.
    pub async fn repair_session(&self, session_id: &str) -> ProcessResult<wire::RepairReport> {
        check_key("session id", session_id)?;
        self.coordinate(process_coordinator::REPAIR_SESSION, &session_id.to_owned())
            .await
    }

    /// One page of rows matching `filter`: at least `limit` rows unless the
    /// listing ends, read shard by shard from `cursor` (`None` for the
    /// first page); the returned cursor continues it. Each step reads a
    /// bounded number of directory entries, so a page costs the same
    /// however many rows exist. Pages follow the directory's order, not
    /// process-id order.
    pub async fn list_processes_page(
        &self,
        filter: &ProcessListFilter,
        cursor: Option<ListCursor>,
        limit: usize,
    ) -> ProcessResult<(Vec<ProcessRecord>, Option<ListCursor>)> {
        filter.validate()?;
        let mut at = cursor.unwrap_or_default();
        let mut rows = Vec::new();
        while rows.len() < limit.max(1) && at.shard < wire::DIRECTORY_SHARDS {
            let page = self
                .shard_page(at.shard, Some(filter.clone()), at.slot)
                .await?;
            rows.extend(page.rows);
            at = match page.next_cursor {
                Some(slot) => ListCursor {
                    shard: at.shard,
                    slot,
                },
                None => ListCursor {
                    shard: at.shard + 1,
                    slot: 0,
                },
            };
        }
        let next = (at.shard < wire::DIRECTORY_SHARDS).then_some(at);
        Ok((self.records_of(rows).await?, next))
    }

    /// The current rows of `grants`' processes, in the grants' order;
    /// grants whose process vanished meanwhile are dropped.
    async fn with_records(
        &self,
        grants: Vec<ProcessHandleGrant>,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        let mut reads = JoinSet::new();
        for (index, grant) in grants.iter().enumerate() {
            let registry = self.clone();
            let process_id = grant.process_id.clone();
            reads.spawn(async move { (index, registry.try_get_process(&process_id).await) });
        }
        let mut records = vec![None; grants.len()];
        while let Some(joined) = reads.join_next().await {
            let (index, record) = joined
                .map_err(|err| ProcessError::unavailable_because("grant read failed", err))?;
            records[index] = record?;
        }
        Ok(grants
            .into_iter()
            .zip(records)
            .filter_map(|(grant, record)| Some((grant, record?)))
            .collect())
    }
}

#[async_trait]
impl ProcessRegistry for RestateProcessRegistry {
    async fn register_process(
        &self,
        registration: ProcessRegistration,
    ) -> ProcessResult<ProcessRecord> {
        check_process_id(&registration.id)?;
        let id = registration.id.clone();
        self.on(&id, process_object::REGISTER, &registration, Call::Write)
            .await
    }

    async fn set_external_ref(
        &self,
        process_id: &str,
        external_ref: ProcessExternalRef,
    ) -> ProcessResult<ProcessRecord> {
        self.on(
            process_id,
            process_object::SET_EXTERNAL_REF,
            &external_ref,
            Call::Write,
        )
        .await
    }

    async fn grant_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
        descriptor: ProcessHandleDescriptor,
    ) -> ProcessResult<ProcessHandleGrant> {
        session_scope.validate()?;
        check_process_id(process_id).map_err(|_| ProcessError::unknown(process_id))?;
        let request = GrantRequest {
            scope: session_scope.clone(),
            process_id: process_id.to_owned(),
            descriptor,
        };
        self.session(session_scope, session_grants::GRANT, &request)
            .await
    }

    async fn revoke_handle(
        &self,
        session_scope: &SessionScope,
        process_id: &str,
    ) -> ProcessResult<()> {
        session_scope.validate()?;
        check_process_id(process_id).map_err(|_| ProcessError::unknown(process_id))?;
        let request = RevokeRequest {
            scope: session_scope.clone(),
            process_id: process_id.to_owned(),
        };
        self.session(session_scope, session_grants::REVOKE, &request)
            .await
    }

    async fn transfer_handle_grants(
        &self,
        from_scope: &SessionScope,
        to_scope: &SessionScope,
        process_ids: &[String],
    ) -> ProcessResult<()> {
        let request = TransferRequest {
            from: from_scope.clone(),
            to: to_scope.clone(),
            process_ids: process_ids.to_vec(),
        };
        self.coordinate(process_coordinator::TRANSFER_GRANTS_V2, &request)
            .await
    }

    async fn list_handle_grants(
        &self,
        session_scope: &SessionScope,
    ) -> ProcessResult<Vec<ProcessHandleGrantEntry>> {
        // The session id is the object key: refuse one no grant could have.
        session_scope.validate()?;
        let target = RequestTarget::object(
            wire::SESSION_GRANTS,
            &session_scope.session_id,
            session_grants::LIST,
        );
        let mut grants: Vec<ProcessHandleGrant> = Vec::new();
        let mut cursor = 0;
        loop {
            let request = GrantsPageRequest {
                scope: session_scope.clone(),
                cursor,
                limit: PAGE_LIMIT,
            };
            let page: GrantsPage = self
                .ingress
                .call(target.clone(), &request, Call::Read)
                .await?;
            grants.extend(page.grants);
            match page.next_cursor {
                Some(next) => cursor = next,
                None => break,
            }
        }
        grants.sort_by(|a, b| a.process_id.cmp(&b.process_id));
        self.with_records(grants).await
    }

    async fn handle_grants_for_process(
        &self,
        process_id: &str,
    ) -> ProcessResult<Vec<ProcessHandleGrant>> {
        self.on_empty(process_id, process_object::GRANTS, Call::Read)
            .await
    }

    async fn delete_session_process_state(
        &self,
        session_id: &str,
    ) -> ProcessResult<ProcessSessionDeleteReport> {
        self.coordinate(
            process_coordinator::DELETE_SESSION_V2,
            &session_id.to_owned(),
        )
        .await
    }

    async fn append_event(
        &self,
        process_id: &str,
        request: ProcessEventAppendRequest,
    ) -> ProcessResult<ProcessEventAppendResult> {
        self.on(process_id, process_object::APPEND, &request, Call::Write)
            .await
    }

    async fn events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        let request = EventsPageRequest {
            after_sequence,
            limit: PAGE_LIMIT,
        };
        self.paged_events(
            process_id,
            process_object::EVENTS_AFTER,
            &request,
            process_object::EVENTS_AFTER,
        )
        .await
    }

    async fn wake_events_after(
        &self,
        process_id: &str,
        after_sequence: u64,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        let request = EventsPageRequest {
            after_sequence,
            limit: PAGE_LIMIT,
        };
        self.paged_events(
            process_id,
            process_object::WAKE_EVENTS_AFTER,
            &request,
            process_object::WAKE_EVENTS_AFTER,
        )
        .await
    }

    async fn complete_process(
        &self,
        process_id: &str,
        await_output: ProcessAwaitOutput,
    ) -> ProcessResult<ProcessRecord> {
        self.on(
            process_id,
            process_object::COMPLETE,
            &await_output,
            Call::Write,
        )
        .await
    }

    async fn record_first_started(
        &self,
        process_id: &str,
        started: ProcessStarted,
    ) -> ProcessResult<ProcessRecord> {
        self.on(
            process_id,
            process_object::RECORD_FIRST_STARTED,
            &started,
            Call::Write,
        )
        .await
    }

    async fn request_process_abandon(
        &self,
        process_id: &str,
        request: AbandonRequest,
    ) -> ProcessResult<ProcessRecord> {
        self.on(
            process_id,
            process_object::REQUEST_ABANDON,
            &request,
            Call::Write,
        )
        .await
    }

    async fn set_process_wait(
        &self,
        process_id: &str,
        wait: WaitState,
    ) -> ProcessResult<ProcessRecord> {
        self.on(process_id, process_object::SET_WAIT, &wait, Call::Write)
            .await
    }

    async fn clear_process_wait(&self, process_id: &str) -> ProcessResult<ProcessRecord> {
        self.on_empty(process_id, process_object::CLEAR_WAIT, Call::Write)
            .await
    }

    /// `None` for unknown ids, and also when ingress cannot be reached
    /// (logged); use [`ProcessRegistry::try_get_process`] to tell them apart.
    async fn get_process(&self, process_id: &str) -> Option<ProcessRecord> {
        match self.try_get_process(process_id).await {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(process_id, %error, "get_process failed");
                None
            }
        }
    }

    async fn try_get_process(&self, process_id: &str) -> ProcessResult<Option<ProcessRecord>> {
        if check_process_id(process_id).is_err() {
            return Ok(None);
        }
        self.on_empty(process_id, process_object::GET, Call::Read)
            .await
    }

    async fn list_processes(
        &self,
        filter: &ProcessListFilter,
    ) -> ProcessResult<Vec<ProcessRecord>> {
        self.list(Some(filter.clone())).await
    }

    async fn ack_wake(&self, process_id: &str, sequence: u64) -> ProcessResult<()> {
        self.on(process_id, process_object::ACK_WAKE, &sequence, Call::Write)
            .await
    }

    async fn list_non_terminal(&self) -> ProcessResult<Vec<ProcessRecord>> {
        self.list(None).await
    }

    async fn claim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        let request = ClaimRequest {
            owner: owner.clone(),
            lease_ttl_ms,
        };
        self.on(
            process_id,
            process_object::CLAIM_LEASE,
            &request,
            Call::Write,
        )
        .await
    }

    async fn reclaim_process_lease(
        &self,
        process_id: &str,
        owner: &LeaseOwnerIdentity,
        observed_holder: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLeaseClaimOutcome> {
        // The proof needs this host's process table, which only the
        // caller has (see `ProcessObject::reclaim_lease`).
        let holder_dead = self
            .liveness
            .is_provably_dead_for(&observed_holder.owner, owner);
        let request = ReclaimRequest {
            owner: owner.clone(),
            observed_holder: observed_holder.clone(),
            lease_ttl_ms,
            holder_dead,
        };
        self.on(
            process_id,
            process_object::RECLAIM_LEASE,
            &request,
            Call::Write,
        )
        .await
    }

    async fn renew_process_lease(
        &self,
        lease: &ProcessLease,
        lease_ttl_ms: u64,
    ) -> ProcessResult<ProcessLease> {
        let request = RenewRequest {
            lease: lease.clone(),
            lease_ttl_ms,
        };
        self.on(
            &lease.process_id,
            process_object::RENEW_LEASE,
            &request,
            Call::Write,
        )
        .await
    }

    async fn get_process_lease(&self, process_id: &str) -> ProcessResult<Option<ProcessLease>> {
        if check_process_id(process_id).is_err() {
            return Ok(None);
        }
        self.on_empty(process_id, process_object::LEASE, Call::Read)
            .await
    }

    async fn complete_process_lease(
        &self,
        completion: &ProcessLeaseCompletion,
    ) -> ProcessResult<()> {
        self.on(
            &completion.process_id,
            process_object::COMPLETE_LEASE,
            completion,
            Call::Write,
        )
        .await
    }

    async fn prune_terminal_processes(
        &self,
        cutoff_epoch_ms: u64,
    ) -> ProcessResult<ProcessPruneReport> {
        self.coordinate(process_coordinator::PRUNE, &cutoff_epoch_ms)
            .await
    }

    fn durability_tier(&self) -> DurabilityTier {
        DurabilityTier::Durable
    }

    async fn count_events_through(
        &self,
        process_id: &str,
        event_type: &str,
        up_to_sequence: u64,
    ) -> ProcessResult<u64> {
        let request = CountRequest {
            event_type: event_type.to_owned(),
            up_to_sequence,
        };
        self.on(
            process_id,
            process_object::COUNT_EVENTS_THROUGH,
            &request,
            Call::Read,
        )
        .await
    }

    async fn recent_events(
        &self,
        process_id: &str,
        limit: usize,
    ) -> ProcessResult<Vec<ProcessEvent>> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        self.paged_events(
            process_id,
            process_object::RECENT_EVENTS,
            &limit,
            process_object::EVENTS_AFTER,
        )
        .await
    }
}

impl RestateProcessRegistry {
    /// How many parts [`prune_part`](Self::prune_part) splits a prune into.
    pub const PRUNE_PARTS: u32 = wire::DIRECTORY_SHARDS;

    /// One part (`0..PRUNE_PARTS`) of `prune_terminal_processes`: running
    /// every part prunes what one `prune_terminal_processes` would, and lets
    /// a caller report progress between parts.
    pub async fn prune_part(
        &self,
        cutoff_epoch_ms: u64,
        part: u32,
    ) -> ProcessResult<ProcessPruneReport> {
        let request = wire::PruneShardRequest {
            cutoff_ms: cutoff_epoch_ms,
            shard: part,
        };
        request.validate()?;
        self.coordinate(process_coordinator::PRUNE_SHARD, &request)
            .await
    }
}

/// Reads the attach target of a process (its outcome or its workflow key).
pub(crate) async fn attach_target(
    registry: &RestateProcessRegistry,
    process_id: &str,
) -> ProcessResult<AttachTarget> {
    registry
        .on_empty(process_id, process_object::ATTACH_TARGET, Call::Read)
        .await
}

/// The first `event_type` event (any event for `None`) above
/// `after_sequence` if logged, else (the process starting the waiter's run
/// under `wait_id`) the run to attach to.
pub(crate) async fn milestone(
    registry: &RestateProcessRegistry,
    process_id: &str,
    event_type: Option<&str>,
    after_sequence: u64,
    wait_id: Option<&str>,
    park_ttl_ms: Option<u64>,
) -> ProcessResult<Milestone> {
    let request = MilestoneRequest {
        event_type: event_type.map(str::to_owned),
        after_sequence,
        wait_id: wait_id.map(str::to_owned),
        park_ttl_ms,
    };
    request.validate()?;
    registry
        .on(process_id, process_object::MILESTONE, &request, Call::Read)
        .await
}

/// Has the process (re)start its `ProcessTerminal` run.
pub(crate) async fn start_terminal(
    registry: &RestateProcessRegistry,
    process_id: &str,
) -> ProcessResult<()> {
    registry
        .on_empty(process_id, process_object::START_TERMINAL, Call::Write)
        .await
}

/// Has the process start its `ProcessRunner` run; `false` when the row is
/// not one a runner runs.
pub(crate) async fn start_run(
    registry: &RestateProcessRegistry,
    process_id: &str,
) -> ProcessResult<bool> {
    registry
        .on_empty(process_id, process_object::START_RUN, Call::Write)
        .await
}
