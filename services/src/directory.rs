//! `ProcessDirectory`: one virtual object per shard (key `0`..`31`) indexing
//! the rows placed in it, for listings and prune.
//!
//! Each row has an entry: its [`ProcessSummary`] for filtering and, when
//! the row is at most [`INLINE_RECORD_BYTES`] as JSON, the row itself so a
//! listing needs no read of its object; larger rows are listed by id and
//! read from their `ProcessObject` by the client. The ids sit in a
//! [`KeyedSet`]; entries are stored by slot in chunks of [`CHUNK`]
//! (`c/{slot / CHUNK}`), so a write reads and rewrites one bounded chunk and
//! a page of 256 entries is eight reads, however many rows the shard holds.
//!
//! The id set is dense (see [`KeyedSet`]): removing a row moves the row of
//! the shard's last slot into the freed slot, and `remove` moves that row's
//! entry between chunks in the same handler, so a page of 256 slots holds
//! 256 rows however many were pruned. A listing paged concurrently with
//! removals may miss a row that moved from a page not yet read into one
//! already read (never one present and unmoved). `prune_page` reads its
//! page again after pruning until a pass prunes nothing, so the rows its
//! own prunes move into the page are pruned too (a row moved by a removal
//! elsewhere, behind the prune's cursor, waits for the next prune).
//!
//! `ProcessObject` puts its entry before it acknowledges a row change, so a
//! listing after an acknowledged write sees it. The exclusive handlers call
//! nothing. `prune_page` is shared (holds no lock) and calls `ProcessObject`
//! `prune`, which calls back `remove`: no lock is held across that call.

use restate_process_registry::restate::wire::{
    ListPage, ListPageRequest, ListedRow, INLINE_RECORD_BYTES, PAGE_LIMIT,
};
use restate_process_registry::rules::prune::prunable;
use restate_process_registry::{ProcessPruneReport, ProcessRecord, ProcessSummary};
use std::collections::BTreeMap;

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::input::Input;
use crate::keyed_set::{KeyedSet, Taken};
use crate::process_object::ProcessObjectClient;
use crate::state::{in_order, ReadState};

/// The shard's ids.
const ROWS: KeyedSet<'static> = KeyedSet::new("rows");
/// Entries per chunk.
const CHUNK: u64 = 32;

/// Entries of one chunk, by slot.
type Chunk = BTreeMap<u64, DirectoryEntry>;

fn chunk_key(slot: u64) -> String {
    format!("c/{}", slot / CHUNK)
}

/// What the directory keeps per row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DirectoryEntry {
    /// The facts listings filter on.
    pub summary: ProcessSummary,
    /// The row, when small.
    pub record: Option<ProcessRecord>,
}

impl DirectoryEntry {
    /// The entry for a row.
    pub(crate) fn of(record: &ProcessRecord) -> Self {
        Self {
            summary: ProcessSummary::of(record),
            record: Self::inline(record).then(|| record.clone()),
        }
    }

    /// Whether the entry carries the record itself (it is small).
    pub(crate) fn inline(record: &ProcessRecord) -> bool {
        serde_json::to_vec(record).is_ok_and(|json| json.len() <= INLINE_RECORD_BYTES)
    }
}

/// `ProcessDirectory/prune_page` input.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct PrunePageRequest {
    /// Prune terminal rows last changed before this.
    pub cutoff_ms: u64,
    /// Where to continue in the shard.
    pub cursor: u64,
}

/// What one page of a prune did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PrunePage {
    /// Rows and events deleted.
    pub report: ProcessPruneReport,
    /// Set when more entries follow.
    pub next_cursor: Option<u64>,
}

/// The entries in slots `[cursor, cursor + limit)`, read chunk by chunk,
/// and where the next page starts.
async fn entries_page(
    ctx: &SharedObjectContext<'_>,
    cursor: u64,
    limit: u32,
) -> Result<(Vec<DirectoryEntry>, Option<u64>), TerminalError> {
    let head = ROWS.head(ctx).await?;
    let end = cursor
        .saturating_add(u64::from(limit.clamp(1, PAGE_LIMIT)))
        .min(head.slots);
    let keys: Vec<String> = (cursor / CHUNK..end.div_ceil(CHUNK))
        .map(|chunk| chunk_key(chunk * CHUNK))
        .collect();
    let chunks = in_order(keys.iter().map(|key| ctx.read::<Chunk>(key))).await?;
    let entries = chunks
        .into_iter()
        .flatten()
        .flat_map(|chunk| chunk.into_iter())
        .filter(|(slot, _)| (cursor..end).contains(slot))
        .map(|(_, entry)| entry)
        .collect();
    Ok((entries, (end < head.slots).then_some(end)))
}

fn store_chunk(ctx: &ObjectContext<'_>, key: &str, chunk: Chunk) {
    if chunk.is_empty() {
        ctx.clear(key);
    } else {
        ctx.set(key, Json(chunk));
    }
}

/// The sharded row index behind `list_processes`, `list_non_terminal` and prune.
#[derive(Debug)]
pub struct ProcessDirectory;

#[restate_sdk::object(name = "ProcessDirectory", lazy_state)]
impl ProcessDirectory {
    /// Stores (or replaces) a row's entry.
    #[handler(name = "put", ingress_private)]
    async fn put(
        &self,
        ctx: ObjectContext<'_>,
        entry: Json<DirectoryEntry>,
    ) -> Result<(), TerminalError> {
        let entry = entry.into_inner();
        let (slot, _) = ROWS.place(&ctx, &entry.summary.id).await?;
        let key = chunk_key(slot);
        let mut chunk: Chunk = ctx.read(&key).await?.unwrap_or_default();
        chunk.insert(slot, entry);
        ctx.set(&key, Json(chunk));
        Ok(())
    }

    /// Forgets a pruned row.
    #[handler(name = "remove", ingress_private)]
    async fn remove(
        &self,
        ctx: ObjectContext<'_>,
        process_id: String,
    ) -> Result<(), TerminalError> {
        let Some(Taken { slot, moved }) = ROWS.take(&ctx, &process_id).await? else {
            return Ok(());
        };
        let key = chunk_key(slot);
        let mut chunk: Chunk = ctx.read(&key).await?.unwrap_or_default();
        chunk.remove(&slot);
        // The set moved its last member into the freed slot: its entry
        // follows it, so entries stay stored by the slot of their id.
        if let Some((_, from)) = moved {
            let from_key = chunk_key(from);
            let entry = if from_key == key {
                chunk.remove(&from)
            } else {
                let mut source: Chunk = ctx.read(&from_key).await?.unwrap_or_default();
                let entry = source.remove(&from);
                store_chunk(&ctx, &from_key, source);
                entry
            };
            if let Some(entry) = entry {
                chunk.insert(slot, entry);
            }
        }
        store_chunk(&ctx, &key, chunk);
        Ok(())
    }

    /// One page of the shard's rows matching the filter (non-terminal rows
    /// when there is none): reads at most `limit` entries.
    #[handler(name = "list")]
    async fn list(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<ListPageRequest>,
    ) -> Result<Json<ListPage>, TerminalError> {
        let request = request.into_inner();
        let (entries, next_cursor) = entries_page(&ctx, request.cursor, request.limit).await?;
        let rows = entries
            .into_iter()
            .filter(|entry| match &request.filter {
                Some(filter) => filter.matches_summary(&entry.summary),
                None => !entry.summary.status.is_terminal(),
            })
            .map(|entry| ListedRow {
                id: entry.summary.id,
                record: entry.record,
            })
            .collect();
        Ok(Json(ListPage { rows, next_cursor }))
    }

    /// Prunes one page of the shard: asks every prunable row's object to
    /// delete itself (it checks again, under its own lock).
    #[handler(name = "prune_page", ingress_private)]
    async fn prune_page(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Json<PrunePageRequest>,
    ) -> Result<Json<PrunePage>, TerminalError> {
        let PrunePageRequest { cutoff_ms, cursor } = request.into_inner();
        let mut report = ProcessPruneReport::default();
        // A pruned row's slot takes the shard's last row (the set stays
        // dense), so the page is read again until a pass prunes nothing:
        // a row moved in from a page not yet read is pruned here, not
        // skipped. Each pass but the last prunes a row, so this ends.
        let next_cursor = loop {
            let (entries, next_cursor) = entries_page(&ctx, cursor, PAGE_LIMIT).await?;
            let candidates: Vec<String> = entries
                .into_iter()
                .filter(|entry| prunable(&entry.summary, cutoff_ms))
                .map(|entry| entry.summary.id)
                .collect();
            let prunes = candidates.iter().map(|id| {
                ctx.object_client::<ProcessObjectClient>(id)
                    .prune(Json(cutoff_ms))
                    .call()
            });
            let mut pruned_now = 0;
            for pruned in in_order(prunes).await? {
                if let Some(events) = pruned.into_inner() {
                    pruned_now += 1;
                    report.pruned_events += events;
                }
            }
            report.pruned_processes += pruned_now;
            if pruned_now == 0 {
                break next_cursor;
            }
        };
        Ok(Json(PrunePage {
            report,
            next_cursor,
        }))
    }
}
