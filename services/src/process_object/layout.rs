//! The state layout of one `ProcessObject` and the reads and writes every
//! handler shares.
//!
//! The record, where the log stands and the incarnation share one key
//! ([`Row`]): every handler reads the record, every append and wait also
//! the head, so one lazy read (one journal command, one completion) serves
//! what took two or three. An append rewrites the row with its head, so a
//! record larger than `INLINE_RECORD_BYTES` (4 KiB) as JSON lives under a key of
//! its own ([`RECORD`], read after the row) and an append never writes
//! more than a small record and the head. Each event is its own key
//! (`e/{seq}`), as is each replay key and unacknowledged wake (see
//! `wakes`), so an append reads and writes a
//! fixed number of keys however long the history is (with lazy state,
//! nothing else is loaded). Parked milestone waits are a key each too
//! (`mw/`, `mf/`, with `mp/{id}` saying where each is and `mfi` grouping
//! those beyond the log, see `milestones`), and the head carries only
//! their small summary, so an append reads none it does not resolve. The
//! grant mirror is one map, bounded by the per-process grant limit. Each stored event carries the per-type counts up to it, so
//! `count_events_through` is one read at any depth.
//!
//! Retired: `d/{dedupe_key}` marked a wake key as delivered while a key's
//! later wakes went undelivered. Every wake with a target is now delivered
//! (the host collapses repeats by wake id), so nothing reads it; rows that
//! still hold some lose them with the rest of their state at prune. The
//! prefix is never to be reused.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

use restate_process_registry::restate::wire::directory_shard;
pub(crate) use restate_process_registry::rules::lease::LeaseLedger;
use restate_process_registry::{ProcessError, ProcessEvent, ProcessHandleGrant, ProcessRecord};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::announce_outcome;
use super::milestones::{type_index_key, Parks, WaitersByType};
use crate::cancel::finish_step;
use crate::directory::{DirectoryEntry, ProcessDirectoryClient};
use crate::errors::terminal;
use crate::state::{ReadState, UNREADABLE_STATE};

/// The [`Row`].
pub(crate) const ROW: &str = "row";
/// The record when it is too large to keep in the row.
pub(crate) const RECORD: &str = "record";
/// The lease ledger (`rules::lease::LeaseLedger`).
pub(crate) const LEASE: &str = "lease";
/// Grants by scope id.
pub(crate) const GRANTS: &str = "grants";
/// Mirror entries a transfer moved in and its destination has not yet
/// confirmed, by destination scope id ([`Transit`]; absent when none).
pub(crate) const TRANSIT: &str = "grants_transit";

/// Key of event `sequence`.
pub(crate) fn event_key(sequence: u64) -> String {
    format!("e/{sequence}")
}

/// Key mapping a replay key to its event's sequence.
pub(crate) fn replay_key(key: &str) -> String {
    format!("r/{key}")
}

pub(crate) type Grants = BTreeMap<String, ProcessHandleGrant>;

/// Where a grant in transit comes from: the source session (which records
/// the transfer's intent) and the transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Transit {
    /// The source session.
    pub(crate) session_id: String,
    /// The transfer's id.
    pub(crate) transfer_id: String,
}

pub(crate) type Transits = BTreeMap<String, Transit>;
pub(crate) type TypeCounts = BTreeMap<String, u64>;

/// Where the log stands: the last sequence, the events per type and the
/// wake-carrying events so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LogHead {
    pub(crate) last_sequence: u64,
    pub(crate) counts: TypeCounts,
    #[serde(default)]
    pub(crate) wakes: u64,
    /// Ready milestone waits, by awaited type (see `milestones`).
    #[serde(default, skip_serializing_if = "WaitersByType::is_empty")]
    pub(crate) waiters: WaitersByType,
    /// Park ids and the waits beyond the log (see `milestones`); absent in
    /// heads the previous release wrote.
    #[serde(default, skip_serializing_if = "Parks::is_empty")]
    pub(crate) parks: Parks,
}

/// One process: its record, where its log stands and its incarnation.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The record callers see.
    pub(crate) record: ProcessRecord,
    /// Where the log stands.
    pub(crate) head: LogHead,
    /// This incarnation's `ProcessTerminal` key (also its runner's and its
    /// milestone waits').
    pub(crate) incarnation: String,
    /// Whether the record as stored lives under [`RECORD`].
    record_apart: bool,
    /// The directory may not hold this record yet (see [`publish_row`]).
    unindexed: bool,
}

impl Row {
    /// A row not stored yet.
    pub(crate) fn new(record: ProcessRecord, incarnation: String) -> Self {
        Self {
            record,
            head: LogHead::default(),
            incarnation,
            record_apart: false,
            unindexed: false,
        }
    }
}

/// A [`Row`] as stored under [`ROW`]: without its record when that lives
/// under [`RECORD`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<ProcessRecord>,
    #[serde(default)]
    head: LogHead,
    incarnation: String,
    /// Set while a record change may be missing from the directory.
    /// Absent (false) in rows written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unindexed: bool,
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

/// The row, if registered. The read is sent when this is called, so it
/// shares a round trip with whatever is issued before it is awaited (a
/// record kept apart costs one more trip after it). In an exclusive
/// handler a row still marked unindexed is indexed first (see
/// [`publish_row`]): the next handler touching the row finishes what a
/// killed one left.
pub(crate) fn read_row<C: RowContext>(
    ctx: &C,
) -> impl std::future::Future<Output = Result<Option<Row>, TerminalError>> + Send + '_ {
    let stored = ctx.read::<StoredRow>(ROW);
    async move {
        let Some(stored) = stored.await? else {
            return Ok(None);
        };
        let (record, record_apart) = match stored.record {
            Some(record) => (record, false),
            None => {
                let record = ctx.read::<ProcessRecord>(RECORD).await?.ok_or_else(|| {
                    TerminalError::new_with_code(UNREADABLE_STATE, "the row's record is missing")
                })?;
                (record, true)
            }
        };
        let mut row = Row {
            record,
            head: stored.head,
            incarnation: stored.incarnation,
            record_apart,
            unindexed: stored.unindexed,
        };
        if row.unindexed {
            ctx.finish_index(&mut row).await?;
        }
        Ok(Some(row))
    }
}

/// The contexts rows are read in: an exclusive one can finish a row's
/// indexing, a shared one only reads (the row is the authority; the
/// directory follows it).
pub(crate) trait RowContext: ReadState + KeyOf + Sync {
    /// Indexes a row marked unindexed, where the context may write.
    fn finish_index<'a>(&'a self, row: &'a mut Row) -> BoxFuture<'a, Result<(), TerminalError>>;
}

impl RowContext for SharedObjectContext<'_> {
    fn finish_index<'a>(&'a self, _row: &'a mut Row) -> BoxFuture<'a, Result<(), TerminalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl RowContext for ObjectContext<'_> {
    fn finish_index<'a>(&'a self, row: &'a mut Row) -> BoxFuture<'a, Result<(), TerminalError>> {
        tracing::info!(process = self.key(), "finishing an interrupted index write");
        Box::pin(index_row(self, row, "repair"))
    }
}

/// The row, or `UnknownProcess` for this key.
pub(crate) async fn require_row<C: RowContext>(ctx: &C) -> Result<Row, TerminalError> {
    read_row(ctx).await?.ok_or_else(|| unknown(ctx))
}

/// The record, or `UnknownProcess` for this key.
pub(crate) async fn require_record<C: RowContext>(ctx: &C) -> Result<ProcessRecord, TerminalError> {
    Ok(require_row(ctx).await?.record)
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

/// Writes an event and its entry in the per-type index and advances `head`
/// past it; the caller writes the row after (so no reader sees a head
/// ahead of its events).
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
}

/// Writes the row when only its head changed (a record kept apart stays
/// where it is).
pub(crate) fn write_row(ctx: &ObjectContext<'_>, row: &Row) {
    ctx.set(
        ROW,
        Json(StoredRow {
            record: (!row.record_apart).then(|| row.record.clone()),
            head: row.head.clone(),
            incarnation: row.incarnation.clone(),
            unindexed: row.unindexed,
        }),
    );
}

/// Writes the row after its record changed (the record apart when it is
/// larger than `INLINE_RECORD_BYTES`, the size the directory keeps a
/// record inline up to), and the record's directory entry (before the
/// caller is answered, so a listing after the answer sees it).
///
/// Intent first: the row is written marked `unindexed`, then the
/// directory is called, then the mark is cleared. The row is the
/// authority, so every cut is safe: killed before the row write, nothing
/// changed; between the row write and the directory's answer, the row is
/// changed and marked, and the next exclusive handler on it (every one
/// reads the row through [`read_row`]) or `procreg check --repair`
/// (`ProcessObject/reindex`) puts the entry; after the answer, only the
/// mark's clearing is missing, and finishing again is an idempotent put.
/// A cancel on the way is absorbed (the put is issued again): past the
/// row write there is nothing to undo, only to finish.
///
/// `step` names the handler, which is also the cut point between the row
/// write and the directory's answer (see `cut`).
pub(crate) async fn publish_row(
    ctx: &ObjectContext<'_>,
    row: &mut Row,
    step: &str,
) -> Result<(), TerminalError> {
    let was_apart = row.record_apart;
    row.record_apart = !DirectoryEntry::inline(&row.record);
    if row.record_apart {
        // Before the row that no longer carries it.
        ctx.set(RECORD, Json(row.record.clone()));
    }
    row.unindexed = true;
    write_row(ctx, row);
    // With the row write, before any await: a terminal row never exists
    // without its outcome on the way to its waiters.
    announce_outcome(ctx, row);
    if was_apart && !row.record_apart {
        // After the row that carries it again: a reader never finds a row
        // whose record is nowhere.
        ctx.clear(RECORD);
    }
    index_row(ctx, row, step).await
}

/// Puts the row's directory entry and clears its `unindexed` mark.
async fn index_row(
    ctx: &ObjectContext<'_>,
    row: &mut Row,
    step: &str,
) -> Result<(), TerminalError> {
    let entry = DirectoryEntry::of(&row.record);
    let shard = directory_shard(&row.record.id);
    finish_step(ctx, step, &row.record.id, || {
        ctx.object_client::<ProcessDirectoryClient>(shard.clone())
            .put(Json(entry.clone()))
            .call()
    })
    .await?;
    row.unindexed = false;
    write_row(ctx, row);
    Ok(())
}
