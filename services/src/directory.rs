//! `ProcessDirectory`: one virtual object per shard (key `0`..`31`), holding
//! a copy of every row placed in it, for the cross-process reads.
//!
//! `ProcessObject` writes the copy before it acknowledges a row change, so a
//! listing after an acknowledged write sees it. Rows sit in 16 buckets per
//! shard (lazy state), so a write rewrites one small bucket, and a listing
//! reads a shard's buckets concurrently. Calls nothing.

use std::collections::BTreeMap;

use restate_process_registry::restate::wire::{
    stable_hash, ListPage, ListPageRequest, DIRECTORY_SHARDS, PAGE_BYTES, PAGE_LIMIT,
};
use restate_process_registry::ProcessRecord;
use restate_sdk::prelude::*;

use crate::input::Input;
use crate::state::{in_order, ReadState};

/// Buckets (state keys) per shard.
const BUCKETS: u64 = 16;

type Bucket = BTreeMap<String, ProcessRecord>;

fn bucket_key(process_id: &str) -> String {
    let bucket = stable_hash(process_id) / u64::from(DIRECTORY_SHARDS) % BUCKETS;
    format!("b{bucket}")
}

/// Every row of one shard, by process id.
async fn shard_rows(ctx: &SharedObjectContext<'_>) -> Result<Bucket, TerminalError> {
    let keys: Vec<String> = (0..BUCKETS).map(|b| format!("b{b}")).collect();
    let buckets = in_order(keys.iter().map(|key| ctx.read::<Bucket>(key))).await?;
    Ok(buckets.into_iter().flatten().flatten().collect())
}

/// The sharded row index behind `list_processes`, `list_non_terminal` and prune.
pub struct ProcessDirectory;

#[restate_sdk::object(name = "ProcessDirectory", lazy_state)]
impl ProcessDirectory {
    /// Stores (or replaces) the copy of a row.
    #[handler(ingress_private)]
    async fn put(
        &self,
        ctx: ObjectContext<'_>,
        record: Json<ProcessRecord>,
    ) -> Result<(), TerminalError> {
        let record = record.into_inner();
        let key = bucket_key(&record.id);
        let mut bucket: Bucket = ctx.read(&key).await?.unwrap_or_default();
        bucket.insert(record.id.clone(), record);
        ctx.set(&key, Json(bucket));
        Ok(())
    }

    /// Forgets a pruned row.
    #[handler(ingress_private)]
    async fn remove(
        &self,
        ctx: ObjectContext<'_>,
        process_id: String,
    ) -> Result<(), TerminalError> {
        let key = bucket_key(&process_id);
        let mut bucket: Bucket = ctx.read(&key).await?.unwrap_or_default();
        if bucket.remove(&process_id).is_some() {
            if bucket.is_empty() {
                ctx.clear(&key);
            } else {
                ctx.set(&key, Json(bucket));
            }
        }
        Ok(())
    }

    /// One page of the shard's rows matching the filter (non-terminal rows
    /// when there is none), in process-id order.
    #[handler]
    async fn list(
        &self,
        ctx: SharedObjectContext<'_>,
        request: Input<ListPageRequest>,
    ) -> Result<Json<ListPage>, TerminalError> {
        let request = request.into_inner();
        let limit = request.limit.clamp(1, PAGE_LIMIT) as usize;
        let rows = shard_rows(&ctx).await?;
        let mut page = ListPage {
            records: Vec::new(),
            next_after_id: None,
        };
        let mut bytes = 0;
        let after = request.after_id.as_deref();
        let matching = rows
            .into_values()
            .filter(|record| after.is_none_or(|after| record.id.as_str() > after))
            .filter(|record| match &request.filter {
                Some(filter) => filter.matches(record),
                None => !record.is_terminal(),
            });
        for record in matching {
            let size = serde_json::to_vec(&record).map_or(0, |json| json.len());
            if !page.records.is_empty()
                && (page.records.len() == limit || bytes + size > PAGE_BYTES)
            {
                page.next_after_id = page.records.last().map(|last| last.id.clone());
                break;
            }
            bytes += size;
            page.records.push(record);
        }
        Ok(Json(page))
    }

    /// Ids of terminal rows last changed before `cutoff_ms`.
    #[handler(ingress_private)]
    async fn terminal_before(
        &self,
        ctx: SharedObjectContext<'_>,
        cutoff_ms: u64,
    ) -> Result<Json<Vec<String>>, TerminalError> {
        let rows = shard_rows(&ctx).await?;
        Ok(Json(
            rows.into_values()
                .filter(|record| record.is_terminal() && record.updated_at_ms < cutoff_ms)
                .map(|record| record.id)
                .collect(),
        ))
    }
}
