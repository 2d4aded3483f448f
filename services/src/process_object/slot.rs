//! The state layout of one `ProcessObject` and the reads and writes every
//! handler shares.
//!
//! Each event is its own key (`e/{seq}`), as is each replay key, delivered
//! wake key and unacknowledged wake (see `wakes`), so an append reads and
//! writes a fixed number of small keys however long the history is (with
//! lazy state, nothing else is loaded). The grant mirror is one map, bounded
//! by the per-process grant limit. Each stored event carries the per-type counts up to it, so
//! `count_events_through` is one read at any depth.

use std::collections::BTreeMap;

use restate_process_registry::restate::wire::directory_shard;
pub(crate) use restate_process_registry::rules::lease::LeaseSlot;
use restate_process_registry::{ProcessError, ProcessEvent, ProcessHandleGrant, ProcessRecord};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::milestones::{type_index_key, WaitersByType};
use crate::directory::{DirectoryEntry, ProcessDirectoryClient};
use crate::errors::terminal;
use crate::state::ReadState;

/// The row.
pub(crate) const RECORD: &str = "record";
/// [`LogHead`] (absent: no events yet).
pub(crate) const LOG: &str = "log";
/// `ProcessTerminal` key of this incarnation.
pub(crate) const TERMINAL_KEY: &str = "terminal";
/// The lease slot (`rules::lease::LeaseSlot`).
pub(crate) const LEASE: &str = "lease";
/// Grants by scope id.
pub(crate) const GRANTS: &str = "grants";

/// Key of event `sequence`.
pub(crate) fn event_key(sequence: u64) -> String {
    format!("e/{sequence}")
}

/// Key mapping a replay key to its event's sequence.
pub(crate) fn replay_key(key: &str) -> String {
    format!("r/{key}")
}

/// Key marking a wake dedupe key as delivered.
pub(crate) fn delivered_key(dedupe_key: &str) -> String {
    format!("d/{dedupe_key}")
}

pub(crate) type Grants = BTreeMap<String, ProcessHandleGrant>;
pub(crate) type TypeCounts = BTreeMap<String, u64>;

/// Where the log stands: the last sequence, the events per type and the
/// wake-carrying events so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LogHead {
    pub(crate) last_sequence: u64,
    pub(crate) counts: TypeCounts,
    #[serde(default)]
    pub(crate) wakes: u64,
    /// Milestone waits parked, by awaited type (see `milestones`).
    #[serde(default, skip_serializing_if = "WaitersByType::is_empty")]
    pub(crate) waiters: WaitersByType,
}

/// An event as stored: the event, the per-type counts through it and the
/// wake-carrying events through it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    pub(crate) event: ProcessEvent,
    pub(crate) counts: TypeCounts,
    #[serde(default)]
    pub(crate) wakes_through: u64,
}

/// The row, or `UnknownProcess` for this key.
pub(crate) async fn require_record<C: ReadState + KeyOf>(
    ctx: &C,
) -> Result<ProcessRecord, TerminalError> {
    ctx.read(RECORD).await?.ok_or_else(|| unknown(ctx))
}

/// `UnknownProcess` for this object's key.
pub(crate) fn unknown<C: KeyOf>(ctx: &C) -> TerminalError {
    terminal(ProcessError::unknown(ctx.object_key()))
}

/// The object key, for both context kinds.
pub(crate) trait KeyOf {
    fn object_key(&self) -> &str;
}

impl KeyOf for ObjectContext<'_> {
    fn object_key(&self) -> &str {
        self.key()
    }
}

impl KeyOf for SharedObjectContext<'_> {
    fn object_key(&self) -> &str {
        self.key()
    }
}

/// This incarnation's `ProcessTerminal` key (written at registration).
pub(crate) async fn terminal_key<C: ReadState>(ctx: &C) -> Result<String, TerminalError> {
    ctx.read(TERMINAL_KEY)
        .await?
        .ok_or_else(|| TerminalError::new("process has no terminal workflow key"))
}

/// Event `sequence` as stored, if written.
pub(crate) async fn stored_event<C: ReadState>(
    ctx: &C,
    sequence: u64,
) -> Result<Option<StoredEvent>, TerminalError> {
    ctx.read(&event_key(sequence)).await
}

/// Event `sequence`, if written.
pub(crate) async fn event<C: ReadState>(
    ctx: &C,
    sequence: u64,
) -> Result<Option<ProcessEvent>, TerminalError> {
    Ok(stored_event(ctx, sequence)
        .await?
        .map(|stored| stored.event))
}

/// Where the log stands.
pub(crate) async fn log_head<C: ReadState>(ctx: &C) -> Result<LogHead, TerminalError> {
    Ok(ctx.read(LOG).await?.unwrap_or_default())
}

/// Writes an event, its entry in the per-type index, and the log head
/// advanced past it.
pub(crate) fn store_event(ctx: &ObjectContext<'_>, event: &ProcessEvent, head: &mut LogHead) {
    let ordinal = head.counts.entry(event.event_type.clone()).or_default();
    *ordinal += 1;
    ctx.set(
        &type_index_key(&event.event_type, *ordinal),
        Json(event.sequence),
    );
    head.last_sequence = event.sequence;
    if event.semantics.wake.is_some() {
        head.wakes += 1;
    }
    let stored = StoredEvent {
        event: event.clone(),
        counts: head.counts.clone(),
        wakes_through: head.wakes,
    };
    ctx.set(&event_key(event.sequence), Json(stored));
    ctx.set(LOG, Json(head.clone()));
}

/// Stores a changed row and its directory entry (before the caller is
/// answered, so a listing after the answer sees it).
pub(crate) async fn store_record(
    ctx: &ObjectContext<'_>,
    record: &ProcessRecord,
) -> Result<(), TerminalError> {
    ctx.set(RECORD, Json(record.clone()));
    ctx.object_client::<ProcessDirectoryClient>(directory_shard(&record.id))
        .put(Json(DirectoryEntry::of(record)))
        .call()
        .await
}
