//! Names and request/response bodies shared by the ingress client and the
//! services. Every body is serde JSON.

use serde::{Deserialize, Serialize};

use crate::error::ProcessResult;
use crate::model::{
    LeaseOwnerIdentity, ProcessAwaitOutput, ProcessEvent, ProcessHandleDescriptor,
    ProcessHandleGrant, ProcessLease, ProcessListFilter, ProcessRecord, SessionScope,
};
use crate::rules::limits::{
    check_key, check_optional_key, check_process_id, check_text, check_ttl,
};
use crate::rules::validate::{check_transfer, Validate};

/// Virtual object keyed by process id: the row, its log, lease and grants.
pub const PROCESS_OBJECT: &str = "ProcessObject";
/// Workflow keyed by [`AttachTarget::workflow_key`]: resolves on the outcome.
pub const PROCESS_TERMINAL: &str = "ProcessTerminal";
/// Workflow keyed by [`MilestoneWait::key`]: one waiter's milestone wait.
pub const PROCESS_MILESTONE: &str = "ProcessMilestone";
/// Virtual object keyed by shard number: a copy of every row in the shard.
pub const PROCESS_DIRECTORY: &str = "ProcessDirectory";
/// Virtual object keyed by session id: the authority for the session's grants.
pub const SESSION_GRANTS: &str = "SessionGrants";
/// Virtual object keyed by session id: the processes holding wakes aimed at it.
pub const SESSION_WAKES: &str = "SessionWakes";
/// Service for the calls that span processes (transfer, session delete, prune).
pub const PROCESS_COORDINATOR: &str = "ProcessCoordinator";

/// Number of `ProcessDirectory` shards; listing fans out over all of them.
pub const DIRECTORY_SHARDS: u32 = 32;
/// Largest page a paged read returns, in items.
pub const PAGE_LIMIT: u32 = 256;
/// Largest page a paged read returns, in serialized bytes (one item always fits).
pub const PAGE_BYTES: usize = 1 << 20;

/// A stable 64-bit FNV-1a hash, so shard placement never changes between
/// builds or hosts.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The directory shard (its object key) that indexes `process_id`.
pub fn directory_shard(process_id: &str) -> String {
    (stable_hash(process_id) % u64::from(DIRECTORY_SHARDS)).to_string()
}

/// `SessionGrants/{session}/grant` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Who receives the handle (its session is the object key).
    pub scope: SessionScope,
    /// The process it is on.
    pub process_id: String,
    /// What the handle shows.
    pub descriptor: ProcessHandleDescriptor,
}

/// `SessionGrants/{session}/revoke` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// Who gives the handle up (its session is the object key).
    pub scope: SessionScope,
    /// The process it is on.
    pub process_id: String,
}

/// `SessionGrants/{session}/list` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantsPageRequest {
    /// The scope whose grants to list (its session is the object key).
    pub scope: SessionScope,
    /// Where to continue (0 for the first page).
    pub cursor: u64,
    /// At most this many slots are read (capped by [`PAGE_LIMIT`]).
    pub limit: u32,
}

/// One page of a scope's grants, in no particular order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantsPage {
    /// The grants.
    pub grants: Vec<ProcessHandleGrant>,
    /// Set when more may follow: ask again from here.
    pub next_cursor: Option<u64>,
}

/// A transfer a source `SessionGrants` has recorded and not yet forgotten:
/// its intent, written in the same exclusive step that checked the grants
/// and before any of them left the source. Stored under `t/{id}` of the
/// source session and answered by `SessionGrants/{session}/pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingTransfer {
    /// The transfer's id (drawn from the coordinator's journal).
    pub transfer_id: String,
    /// The scope giving the grants up.
    pub from: SessionScope,
    /// The scope receiving them.
    pub to: SessionScope,
    /// The grants as the source held them when the transfer was recorded.
    pub grants: Vec<ProcessHandleGrant>,
    /// Every grant has left the source (its mirror entry moved to `to`);
    /// what is left is the destination's part.
    pub taken: bool,
}

/// A session delete begun and not yet completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    /// The delete's id (drawn from the coordinator's journal).
    pub delete_id: String,
    /// When it began (the registry clock).
    pub begun_at_ms: u64,
}

/// A session's unfinished transfers (it is their source) and deletes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingIntents {
    /// Transfers out of the session not yet completed.
    pub transfers: Vec<PendingTransfer>,
    /// Session deletes begun and not yet completed.
    pub deletes: Vec<PendingDelete>,
    /// A take, grant or revoke a cut-off invocation left between its
    /// writes (the session's next exclusive handler finishes it), described.
    #[serde(default)]
    pub steps: Vec<String>,
}

impl PendingIntents {
    /// Nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.transfers.is_empty() && self.deletes.is_empty() && self.steps.is_empty()
    }
}

/// What `ProcessCoordinator/repair_session` completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepairReport {
    /// The session repaired.
    pub session_id: String,
    /// Ids of the transfers completed (given and forgotten).
    pub transfers: Vec<String>,
    /// Ids of the deletes completed (drained, wakes cleared, forgotten).
    pub deletes: Vec<String>,
    /// A half-done take, grant or revoke was finished first.
    #[serde(default)]
    pub finished_step: bool,
}

/// `ProcessObject/events_after` and `wake_events_after` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPageRequest {
    /// Return events with a greater sequence.
    pub after_sequence: u64,
    /// At most this many (capped by [`PAGE_LIMIT`]).
    pub limit: u32,
}

/// One page of events, ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events.
    pub events: Vec<ProcessEvent>,
    /// Set when more events follow: ask again after this sequence.
    pub next_after: Option<u64>,
}

/// `ProcessObject/claim_lease` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The claiming worker.
    pub owner: LeaseOwnerIdentity,
    /// Lease length on the registry's clock.
    pub lease_ttl_ms: u64,
}

/// `ProcessObject/reclaim_lease` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimRequest {
    /// The claiming worker.
    pub owner: LeaseOwnerIdentity,
    /// The lease the caller saw; the swap happens only if it is still current.
    pub observed_holder: ProcessLease,
    /// Lease length on the registry's clock.
    pub lease_ttl_ms: u64,
    /// The caller's verdict, from its own host: the observed holder is
    /// provably dead (`rules::lease::provably_dead`). The server cannot see
    /// the holder's processes; it checks what it can (see
    /// `ProcessObject::reclaim_lease`). Absent (older clients): not dead.
    #[serde(default)]
    pub holder_dead: bool,
}

/// `ProcessObject/renew_lease` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The lease being renewed.
    pub lease: ProcessLease,
    /// New length from now.
    pub lease_ttl_ms: u64,
}

/// `ProcessObject/count_events_through` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRequest {
    /// The event type to count.
    pub event_type: String,
    /// Count events with sequence ≤ this.
    pub up_to_sequence: u64,
}

/// `ProcessObject/attach_target` output: the outcome when already known,
/// else the workflow whose promise will carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachTarget {
    /// The outcome, when the process is already terminal.
    pub output: Option<ProcessAwaitOutput>,
    /// `ProcessTerminal` key of this incarnation of the process.
    pub workflow_key: String,
}

/// `ProcessObject/milestone` input: the first `event_type` event above
/// `after_sequence` (any event when `event_type` is absent).
///
/// With a `wait_id` the object itself starts the wait's `ProcessMilestone`
/// run when the event is not logged yet (built from its own key and row,
/// never from this body) and answers the run's key to attach to. Without
/// one (clients before waits had ids) it only looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneRequest {
    /// The event type awaited; `None` for the next event of any type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only events with a greater sequence count.
    pub after_sequence: u64,
    /// The waiter's own random id ([`new_wait_id`]): one run per waiter,
    /// shared with nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_id: Option<String>,
    /// How long the wait may stay parked before it answers
    /// [`MilestoneOutcome::Expired`]; the services clamp it to
    /// [`MIN_PARK_TTL_MS`]..=[`MAX_PARK_TTL_MS`] (the maximum when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_ttl_ms: Option<u64>,
}

/// Shortest park a wait may ask for, in milliseconds.
pub const MIN_PARK_TTL_MS: u64 = 1_000;
/// Longest park (and the default): five minutes. A wait still unanswered
/// then answers `Expired` and the waiter, if it still waits, starts a
/// fresh one, so an abandoned wait holds nothing for longer than this.
pub const MAX_PARK_TTL_MS: u64 = 5 * 60 * 1_000;

/// Longest [`MilestoneRequest::wait_id`].
pub const MAX_WAIT_ID_BYTES: usize = 64;

/// A fresh wait id: 128 bits from the operating system's random source,
/// in hex.
pub fn new_wait_id() -> ProcessResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| {
        crate::error::ProcessError::unavailable(format!("the system random source failed: {err}"))
    })?;
    Ok(format!("{:032x}", u128::from_le_bytes(bytes)))
}

/// `ProcessObject/milestone` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Milestone {
    /// The event is in the log.
    Found {
        /// The first matching event.
        event: ProcessEvent,
    },
    /// Not yet.
    Pending {
        /// The process's incarnation (its `ProcessTerminal` key).
        incarnation: String,
        /// The `ProcessMilestone` run the object started for the request's
        /// `wait_id`, to attach to; absent when the request had none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_key: Option<String>,
    },
}

/// `ProcessMilestone/run` input: what one parked wait waits for. Only
/// `ProcessObject` sends it (the handler is private), from its own key and
/// row. The workflow's key must be [`MilestoneWait::key`] of it.
///
/// Runs journaled by the release before wait ids carry neither `wait_id`
/// nor `park_ttl_ms`; they still read (and replay as they ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneWait {
    /// The process.
    pub process_id: String,
    /// Its incarnation when the wait was asked for.
    pub incarnation: String,
    /// The event type awaited; `None` for the next event of any type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only events with a greater sequence count.
    pub after_sequence: u64,
    /// The waiter's id; `None` only in runs of the previous release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_id: Option<String>,
    /// How long the run stays parked before it answers `Expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_ttl_ms: Option<u64>,
}

impl MilestoneWait {
    /// The `ProcessMilestone` key of this wait: `w{wait id}:` before
    /// [`milestone_key`] (the previous release's key, which starts with a
    /// digit, so the two never collide). A wait id has no `:`, so the key
    /// decodes one way only.
    pub fn key(&self) -> String {
        let key = milestone_key(
            &self.incarnation,
            self.event_type.as_deref(),
            self.after_sequence,
        );
        match &self.wait_id {
            Some(wait_id) => format!("w{wait_id}:{key}"),
            None => key,
        }
    }

    /// The park time to-live this wait asked for, clamped.
    pub fn park_ttl_ms(&self) -> u64 {
        self.park_ttl_ms
            .unwrap_or(MAX_PARK_TTL_MS)
            .clamp(MIN_PARK_TTL_MS, MAX_PARK_TTL_MS)
    }
}

/// The previous release's wait key (see [`MilestoneWait::key`]); a wait
/// for any event has no type part.
pub fn milestone_key(incarnation: &str, event_type: Option<&str>, after_sequence: u64) -> String {
    let prefix = format!("{}:{incarnation}:{after_sequence}", incarnation.len());
    match event_type {
        Some(event_type) => format!("{prefix}:{event_type}"),
        None => prefix,
    }
}

/// `ProcessMilestone/run` output: what one wait came to. Never a refusal:
/// a run's answer is kept for its retention, so it only ever says what the
/// log says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MilestoneOutcome {
    /// The first matching event.
    Found {
        /// The event.
        event: ProcessEvent,
    },
    /// The process ended without one.
    Ended,
    /// The park timed out (or made room for a newer wait): nothing is
    /// parked any more; a waiter that still waits starts a fresh wait.
    Expired,
}

/// `ProcessCoordinator/prune_shard` input: one directory shard's share of
/// `prune_terminal_processes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneShardRequest {
    /// Prune terminal rows last changed before this.
    pub cutoff_ms: u64,
    /// The shard, `0..DIRECTORY_SHARDS`.
    pub shard: u32,
}

impl Validate for PruneShardRequest {
    fn validate(&self) -> ProcessResult<()> {
        if self.shard >= DIRECTORY_SHARDS {
            return Err(crate::error::ProcessError::invalid(format!(
                "shard {} does not exist (there are {DIRECTORY_SHARDS})",
                self.shard
            )));
        }
        Ok(())
    }
}

/// `ProcessDirectory/list` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPageRequest {
    /// Rows to return; `None` means every non-terminal row.
    pub filter: Option<ProcessListFilter>,
    /// Where to continue in the shard (0 for the first page).
    pub cursor: u64,
    /// At most this many entries are read (capped by [`PAGE_LIMIT`]).
    pub limit: u32,
}

/// One page of a shard's matching rows, in the shard's slot order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage {
    /// The matching rows.
    pub rows: Vec<ListedRow>,
    /// Set when more entries follow: ask again from here.
    pub next_cursor: Option<u64>,
}

/// A matching row: the row itself when the directory keeps it inline
/// (small rows), else just its id, to read from its `ProcessObject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedRow {
    /// Process id.
    pub id: String,
    /// The row, when small enough to be kept in the directory.
    pub record: Option<ProcessRecord>,
}

/// Where a paged listing continues: a directory shard and a slot in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCursor {
    /// The shard being read.
    pub shard: u32,
    /// The next slot in it.
    pub slot: u64,
}

/// Rows no larger than this (as JSON) are kept inline in their directory
/// entry, so listing them needs no read of their object.
pub const INLINE_RECORD_BYTES: usize = 4 * 1024;

/// `ProcessCoordinator/transfer_grants` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The scope giving up the grants.
    pub from: SessionScope,
    /// The scope receiving them.
    pub to: SessionScope,
    /// The processes whose grants move.
    pub process_ids: Vec<String>,
}

impl Validate for GrantRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.scope.validate()?;
        check_process_id(&self.process_id)?;
        self.descriptor.validate()
    }
}

impl Validate for RevokeRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.scope.validate()?;
        check_process_id(&self.process_id)
    }
}

impl Validate for GrantsPageRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.scope.validate()
    }
}

impl Validate for EventsPageRequest {
    fn validate(&self) -> ProcessResult<()> {
        Ok(())
    }
}

impl Validate for ClaimRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.owner.validate()?;
        check_ttl(self.lease_ttl_ms)
    }
}

impl Validate for ReclaimRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.owner.validate()?;
        self.observed_holder.validate()?;
        check_ttl(self.lease_ttl_ms)
    }
}

impl Validate for RenewRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.lease.validate()?;
        check_ttl(self.lease_ttl_ms)
    }
}

impl Validate for CountRequest {
    fn validate(&self) -> ProcessResult<()> {
        check_key("event type", &self.event_type)
    }
}

impl Validate for MilestoneRequest {
    fn validate(&self) -> ProcessResult<()> {
        check_optional_key("event type", self.event_type.as_deref())?;
        check_wait_id(self.wait_id.as_deref())
    }
}

/// A wait id: 1..=[`MAX_WAIT_ID_BYTES`] ASCII letters, digits, `-`, `_`.
fn check_wait_id(wait_id: Option<&str>) -> ProcessResult<()> {
    let Some(wait_id) = wait_id else {
        return Ok(());
    };
    let fine = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if wait_id.is_empty() || wait_id.len() > MAX_WAIT_ID_BYTES || !wait_id.bytes().all(fine) {
        return Err(crate::error::ProcessError::invalid(format!(
            "a wait id is 1 to {MAX_WAIT_ID_BYTES} ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

impl Validate for MilestoneWait {
    fn validate(&self) -> ProcessResult<()> {
        check_process_id(&self.process_id)?;
        // `{process id}#i-{seed}`: compared with the stored key, so only
        // its size matters here.
        check_text("incarnation", &self.incarnation)?;
        check_optional_key("event type", self.event_type.as_deref())?;
        check_wait_id(self.wait_id.as_deref())
    }
}

impl Validate for ListPageRequest {
    fn validate(&self) -> ProcessResult<()> {
        self.filter.validate()
    }
}

impl Validate for TransferRequest {
    fn validate(&self) -> ProcessResult<()> {
        check_transfer(&self.from, &self.to, &self.process_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reclaim_journaled_before_the_verdict_reads_as_not_dead() {
        let owner =
            serde_json::json!({ "owner_id": "w", "incarnation": "w-1", "host": "h", "pid": 7 });
        let old = serde_json::json!({
            "owner": owner,
            "observed_holder": {
                "process_id": "p", "owner": owner, "lease_token": "t",
                "fencing_token": 1, "claimed_at_epoch_ms": 1, "expires_at_epoch_ms": 2
            },
            "lease_ttl_ms": 10
        });
        let request: ReclaimRequest = serde_json::from_value(old).expect("old reclaim");
        assert!(!request.holder_dead);
        assert_eq!(request.owner.incarnation_id, "w-1");
    }

    #[test]
    fn a_milestone_run_journaled_by_the_previous_release_still_reads() {
        let old = serde_json::json!({
            "process_id": "p", "incarnation": "p#i-1", "event_type": "note", "after_sequence": 4
        });
        let wait: MilestoneWait = serde_json::from_value(old).expect("old run input");
        assert_eq!(wait.wait_id, None);
        assert_eq!(wait.key(), milestone_key("p#i-1", Some("note"), 4));
        assert_eq!(wait.park_ttl_ms(), MAX_PARK_TTL_MS);
        let old_pending: Milestone = serde_json::from_value(
            serde_json::json!({ "state": "pending", "incarnation": "p#i-1" }),
        )
        .expect("old answer");
        assert!(matches!(
            old_pending,
            Milestone::Pending { wait_key: None, .. }
        ));
    }

    #[test]
    fn wait_keys_of_waiters_differ_and_never_take_the_old_shape() {
        let (a, b) = (new_wait_id().expect("id"), new_wait_id().expect("id"));
        assert_ne!(a, b);
        let wait = |wait_id: &str| MilestoneWait {
            process_id: "p".into(),
            incarnation: "p#i-1".into(),
            event_type: None,
            after_sequence: 0,
            wait_id: Some(wait_id.into()),
            park_ttl_ms: Some(1),
        };
        assert_ne!(wait(&a).key(), wait(&b).key());
        assert!(wait(&a).key().starts_with('w'));
        assert_eq!(wait(&a).park_ttl_ms(), MIN_PARK_TTL_MS);
        assert!(wait(&a).validate().is_ok());
        assert!(wait("a:b").validate().is_err());
        assert!(wait("").validate().is_err());
    }

    #[test]
    fn shard_placement_is_stable_and_spread() {
        // Fixed vectors: placement must never change between builds.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let mut used = std::collections::BTreeSet::new();
        for n in 0..1000 {
            used.insert(directory_shard(&format!("proc-{n}")));
        }
        assert_eq!(used.len(), DIRECTORY_SHARDS as usize);
    }
}
