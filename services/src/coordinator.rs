//! `ProcessCoordinator`: an unkeyed service for the calls that span
//! processes. It holds no lock and decides nothing itself: each step is an
//! exclusive handler of the object that is the authority for what it
//! changes, and the coordinator's journal makes the sequence durable (after
//! a crash it resumes at the step it had reached). Every step is
//! idempotent, keyed by an id the coordinator draws from its journal
//! (`ctx.rand()`), so any step may be issued again.
//!
//! ## A transfer finishes or undoes as a whole (`transfer_grants_v2`)
//!
//! 1. **take** (source `SessionGrants`, exclusive): checks that the source
//!    scope holds *every* listed grant, or refuses and changes nothing;
//!    otherwise, in the same step and before any grant leaves, records the
//!    transfer's **intent** (`t/{transfer id}`: source, destination, the
//!    grants) and marks its take unfinished. From here the transfer has
//!    happened, in the source's order: revokes, grants, other transfers and
//!    deletes of the source are exclusive handlers of the same object, and
//!    each first finishes an unfinished take, so they all see the grants
//!    gone. Then, per grant, the process moves its mirror entry from the
//!    source scope to the destination scope in one exclusive handler
//!    (`ProcessObject::mirror_move`, which also notes where the grant
//!    comes from), and the source forgets the grant.
//! 2. **give** (destination `SessionGrants`): stores each grant its
//!    process's mirror holds under the destination scope
//!    (`mirror_settle`). A grant revoked or replaced at the destination
//!    after it moved, or whose process was pruned, is not stored, which
//!    makes the give idempotent: issued again it restores nothing.
//! 3. **settle** (source): forgets the intent.
//!
//! So a grant is always in exactly one place or recorded in transit: held
//! by the source (and its mirror), or moved (the mirror names the
//! destination and the source's intent lists it) until the destination
//! stores it. A reader between the steps may see a moved grant in the
//! process's mirror before the destination's list; `procreg check` reports
//! it as part of the unfinished intent, never as lost. A delete of the
//! destination overlapping the transfer keeps the grants that arrive after
//! it began (as if the transfer came second).
//!
//! **Kill.** Killing the coordinator (or a step) anywhere leaves at most an
//! intent: an unfinished take is finished by the source's next exclusive
//! handler, and the destination's part by the next transfer or delete
//! through the coordinator whose source is that session (they first
//! complete every intent the session records), or by `repair_session`
//! (`procreg check --repair`). Before the intent is recorded nothing has
//! changed; the transfer then simply did not happen.
//!
//! **Cancel.** The coordinator absorbs a cancel: the 409 "cancelled" it
//! gets at a step (from its own await, or a step cancelled with it) makes
//! it issue that step again (`cancel::absorbing`), so the transfer runs to
//! completion and is acknowledged. The steps of `SessionGrants` absorb a
//! cancel at their own process calls the same way; `ProcessObject`'s
//! mirror handlers refuse it by design: each reads, then writes, with
//! nothing awaited after its first write, so a cancel fails it before it
//! changed anything and the caller issues it again.
//!
//! ## A session delete ends, and finishes as a whole (`delete_session_v2`)
//!
//! `begin_delete` records the delete's intent (`d/{id}`): the session's
//! last grant sequence number (grants stored after it are newer than the
//! delete) and its top slot. Each `drain` batch then revokes the grants
//! older than the delete in the next page of slots going *down*; a member
//! only ever moves down (from the last slot into a hole, see `keyed_set`),
//! and everything above the walk is newer, so every older grant is met
//! exactly once and the delete ends after `slots at its start / 256`
//! batches, however many grants arrive meanwhile. A grant made after it
//! began is kept and not reported (as if granted after the delete). Each
//! batch learns, from the process's own exclusive `mirror_drop`, how many
//! grants the process still carries and whether it has ended, so the
//! orphaned / preserved split (`SessionDeleteTally`, shared with the
//! in-memory registry) is what the process itself saw; the batch keeps
//! what it revoked in the intent as it goes, so a batch issued again after
//! a cancel or kill still answers every revocation once. Then every
//! process `SessionWakes` lists clears its wake target if it aims at the
//! session (walking the index down, as holders leave it), and
//! `end_delete` forgets the intent. A killed delete is completed like a
//! transfer: by `repair_session`, or by the next transfer or delete of the
//! session once it began over 30 s ago (sooner, a slow delete still driven
//! by its own coordinator would lose from its report what the other
//! revoked; the grants' state would be right either way). Its report is
//! then not delivered to anyone. No wake event is deleted or
//! acknowledged: each keeps the scope it was aimed at.
//!
//! ## The previous release's handlers
//!
//! `transfer_grants` and `delete_session` keep the previous release's steps
//! and requests exactly, so their journals replay across an in-place
//! upgrade (requests serialize byte for byte: new fields are skipped when
//! absent). They absorb cancels now, but record no intent: a kill between
//! take and give still loses the taken grants, and the old delete ends
//! only when no grant is left. The client calls the `_v2` handlers; an
//! older server answers those 404, so upgrade the services first.
//!
//! ## Prune
//!
//! Each directory shard is pruned page by page (`ProcessDirectory::prune_page`,
//! at most one page of rows per step, read again while a pass prunes
//! something, since pruned rows' slots take the shard's last rows); each row
//! re-checks under its own lock. Its `drop_pruned` messages are one-way and
//! can arrive late, after the id is registered again and granted anew:
//! `SessionGrants::drop_pruned` forgets a grant only if the process's own
//! mirror no longer holds it, so the next incarnation's grant stays.

use restate_process_registry::restate::wire::{
    PendingTransfer, PruneShardRequest, RepairReport, TransferRequest, DIRECTORY_SHARDS, PAGE_LIMIT,
};
use restate_process_registry::rules::grants::SessionDeleteTally;
use restate_process_registry::rules::limits::check_key;
use restate_process_registry::{unix_now_ms, ProcessPruneReport, ProcessSessionDeleteReport};
use restate_sdk::prelude::*;

use crate::cancel::{absorbing, service_cut_point as cut_point};
use crate::directory::{ProcessDirectoryClient, PrunePageRequest};
use crate::errors::OrTerminal;
use crate::input::Input;
use crate::process_object::ProcessObjectClient;
use crate::session_grants::{DrainRequest, GiveRequest, SessionGrantsClient, TakeRequest};
use crate::session_wakes::SessionWakesClient;

/// The cross-process coordinator.
#[derive(Debug)]
pub struct ProcessCoordinator;

/// A fresh id for a transfer or delete, from the invocation's journaled
/// randomness (a replay draws the same).
fn fresh_id(ctx: &mut Context<'_>, prefix: &str) -> String {
    let (high, low) = (ctx.rand().random::<u64>(), ctx.rand().random::<u64>());
    format!("{prefix}-{high:016x}{low:016x}")
}

#[restate_sdk::service(name = "ProcessCoordinator")]
impl ProcessCoordinator {
    /// The previous release's `transfer_handle_grants`, kept step for step
    /// (take, then give, with the requests that release journaled) so its
    /// invocations in flight across an in-place upgrade replay, and its
    /// clients keep working. It absorbs a cancel (each step is issued again)
    /// but, recording no intent, a kill between its steps loses the taken
    /// grants: callers use `transfer_grants_v2`.
    #[handler(name = "transfer_grants")]
    async fn transfer_grants(
        &self,
        ctx: Context<'_>,
        request: Input<TransferRequest>,
    ) -> Result<Json<()>, TerminalError> {
        let TransferRequest {
            from,
            to,
            process_ids,
        } = request.into_inner();
        let check_only = from.id() == to.id();
        let take = TakeRequest {
            from: from.clone(),
            process_ids,
            check_only,
            to: None,
            transfer_id: None,
        };
        let source = ctx.object_client::<SessionGrantsClient>(&from.session_id);
        let taken = absorbing(|| source.take(Json(take.clone())).call())
            .await?
            .into_inner();
        if !check_only {
            let give = GiveRequest {
                to: to.clone(),
                grants: taken,
                transfer_id: None,
            };
            let destination = ctx.object_client::<SessionGrantsClient>(&to.session_id);
            absorbing(|| destination.give(Json(give.clone())).call()).await?;
        }
        Ok(Json(()))
    }

    /// `transfer_handle_grants`: first completes whatever transfer or
    /// delete out of the source was cut off, then take at the source
    /// (which records the intent), give at the destination, and forget the
    /// intent at the source.
    #[handler(name = "transfer_grants_v2")]
    async fn transfer_grants_v2(
        &self,
        mut ctx: Context<'_>,
        request: Input<TransferRequest>,
    ) -> Result<Json<()>, TerminalError> {
        let TransferRequest {
            from,
            to,
            process_ids,
        } = request.into_inner();
        let transfer_id = fresh_id(&mut ctx, "transfer");
        complete_pending(&ctx, &from.session_id, false).await?;
        let check_only = from.id() == to.id();
        let source = ctx.object_client::<SessionGrantsClient>(&from.session_id);
        let take = TakeRequest {
            from: from.clone(),
            process_ids,
            check_only,
            to: Some(to.clone()),
            transfer_id: Some(transfer_id.clone()),
        };
        let taken = absorbing(|| source.take(Json(take.clone())).call())
            .await?
            .into_inner();
        if check_only {
            return Ok(Json(()));
        }
        cut_point(&ctx, "transfer.after_take", &from.session_id).await?;
        let pending = PendingTransfer {
            transfer_id,
            from,
            to,
            grants: taken,
            taken: true,
        };
        finish_transfer(&ctx, &pending, true).await?;
        Ok(Json(()))
    }

    /// The previous release's `delete_session_process_state`, kept step for
    /// step (drain batches until none is left, then the wake index page by
    /// page) so its invocations in flight across an in-place upgrade
    /// replay. It absorbs a cancel; it ends only once no grant is left, so
    /// under a steady stream of grants it may not: callers use
    /// `delete_session_v2`.
    #[handler(name = "delete_session")]
    async fn delete_session(
        &self,
        ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<ProcessSessionDeleteReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        let mut tally = SessionDeleteTally::default();
        let grants = ctx.object_client::<SessionGrantsClient>(&session_id);
        let mut cursor = 0;
        loop {
            let request = DrainRequest {
                cursor,
                limit: u64::from(PAGE_LIMIT),
                delete_id: None,
            };
            let drained = absorbing(|| grants.drain(Json(request.clone())).call())
                .await?
                .into_inner();
            for (process_id, remaining) in &drained.revoked {
                let terminal = drained.ended.contains(process_id);
                tally.revoked(process_id, *remaining, terminal);
            }
            if drained.remaining == 0 {
                break;
            }
            cursor = drained.next_cursor.unwrap_or(0);
        }
        let wakes = ctx.object_client::<SessionWakesClient>(&session_id);
        let mut cursor = 0;
        loop {
            let (holders, next) = absorbing(|| wakes.holders(cursor).call())
                .await?
                .into_inner();
            forget_wakes_of(&ctx, &session_id, holders).await?;
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(Json(tally.report(&session_id)))
    }

    /// `delete_session_process_state`: first completes whatever transfer
    /// or delete out of the session was cut off; then records the delete
    /// (`begin_delete`), drains the grants older than it, clears the wake
    /// target of every process the session's index lists, and forgets it.
    #[handler(name = "delete_session_v2")]
    async fn delete_session_v2(
        &self,
        mut ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<ProcessSessionDeleteReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        let delete_id = fresh_id(&mut ctx, "delete");
        complete_pending(&ctx, &session_id, false).await?;
        let tally = drive_delete(&ctx, &session_id, &delete_id, true).await?;
        Ok(Json(tally.report(&session_id)))
    }

    /// Completes every transfer out of `session_id` and every delete of it
    /// that was cut off (its coordinator killed), idempotently; answers
    /// what it completed (`procreg check --repair`).
    #[handler(name = "repair_session")]
    async fn repair_session(
        &self,
        ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<RepairReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        Ok(Json(complete_pending(&ctx, &session_id, true).await?))
    }

    /// `prune_terminal_processes`: every shard, page by page.
    #[handler(name = "prune")]
    async fn prune(
        &self,
        ctx: Context<'_>,
        cutoff_ms: Input<u64>,
    ) -> Result<Json<ProcessPruneReport>, TerminalError> {
        let cutoff_ms = cutoff_ms.into_inner();
        let mut report = ProcessPruneReport::default();
        for shard in 0..DIRECTORY_SHARDS {
            let pruned = prune_shard(&ctx, shard, cutoff_ms).await?;
            report.pruned_processes += pruned.pruned_processes;
            report.pruned_events += pruned.pruned_events;
        }
        Ok(Json(report))
    }

    /// One directory shard's share of `prune_terminal_processes`, so a
    /// caller can show progress (`procreg prune`). Each row is pruned under
    /// its own object's lock, exactly as by `prune`.
    #[handler(name = "prune_shard")]
    async fn prune_shard(
        &self,
        ctx: Context<'_>,
        request: Input<PruneShardRequest>,
    ) -> Result<Json<ProcessPruneReport>, TerminalError> {
        let PruneShardRequest { cutoff_ms, shard } = request.into_inner();
        Ok(Json(prune_shard(&ctx, shard, cutoff_ms).await?))
    }
}

/// How long a delete may run before another transfer or delete of its
/// session completes it as cut off (a repair does at once).
const DELETE_GRACE_MS: u64 = 30_000;

/// Completes the cut-off intents `session_id` records: every transfer (a
/// live coordinator driving its own transfer concurrently does no harm:
/// every step is idempotent and it answers nothing but done), and every
/// delete when `all` (a repair), otherwise those begun over
/// [`DELETE_GRACE_MS`] ago.
async fn complete_pending(
    ctx: &Context<'_>,
    session_id: &str,
    all: bool,
) -> Result<RepairReport, TerminalError> {
    let grants = ctx.object_client::<SessionGrantsClient>(session_id);
    let pending = absorbing(|| grants.pending().call()).await?.into_inner();
    let mut report = RepairReport {
        session_id: session_id.to_owned(),
        ..RepairReport::default()
    };
    if !pending.steps.is_empty() {
        report.finished_step = absorbing(|| grants.resume().call()).await?.into_inner();
    }
    for transfer in pending.transfers {
        let source = ctx.object_client::<SessionGrantsClient>(&transfer.from.session_id);
        let take = TakeRequest {
            from: transfer.from.clone(),
            process_ids: Vec::new(),
            check_only: false,
            to: Some(transfer.to.clone()),
            transfer_id: Some(transfer.transfer_id.clone()),
        };
        // Finishes the source's part if it was cut off; answers the grants.
        let grants = absorbing(|| source.take(Json(take.clone())).call())
            .await?
            .into_inner();
        let transfer = PendingTransfer {
            grants,
            taken: true,
            ..transfer
        };
        finish_transfer(ctx, &transfer, false).await?;
        report.transfers.push(transfer.transfer_id);
    }
    if pending.deletes.is_empty() {
        return Ok(report);
    }
    let now = ctx.run(|| async { Ok(unix_now_ms()) }).name("now").await?;
    for delete in pending.deletes {
        // A delete still driven by its own coordinator would lose from its
        // report what another one revoked: only a repair, or one cut off a
        // while ago, is completed here.
        let stale = now.saturating_sub(delete.begun_at_ms) >= DELETE_GRACE_MS;
        if all || stale {
            drive_delete(ctx, session_id, &delete.delete_id, false).await?;
            report.deletes.push(delete.delete_id);
        }
    }
    Ok(report)
}

/// The destination's part of a taken transfer, then the source forgets it.
/// Both steps are idempotent, so a repair may run them again.
async fn finish_transfer(
    ctx: &Context<'_>,
    transfer: &PendingTransfer,
    hold: bool,
) -> Result<(), TerminalError> {
    let give = GiveRequest {
        to: transfer.to.clone(),
        grants: transfer.grants.clone(),
        transfer_id: Some(transfer.transfer_id.clone()),
    };
    let destination = ctx.object_client::<SessionGrantsClient>(&transfer.to.session_id);
    absorbing(|| destination.give(Json(give.clone())).call()).await?;
    if hold {
        cut_point(ctx, "transfer.after_give", &transfer.from.session_id).await?;
    }
    let source = ctx.object_client::<SessionGrantsClient>(&transfer.from.session_id);
    absorbing(|| source.settle(transfer.transfer_id.clone()).call()).await?;
    Ok(())
}

/// Session delete `delete_id` of `session_id`, from its first step (each
/// is idempotent, so a repair runs the whole sequence again).
async fn drive_delete(
    ctx: &Context<'_>,
    session_id: &str,
    delete_id: &str,
    hold: bool,
) -> Result<SessionDeleteTally, TerminalError> {
    let mut tally = SessionDeleteTally::default();
    let grants = ctx.object_client::<SessionGrantsClient>(session_id);
    absorbing(|| grants.begin_delete(delete_id.to_owned()).call()).await?;
    if hold {
        cut_point(ctx, "delete.after_begin", session_id).await?;
    }
    loop {
        let request = DrainRequest {
            cursor: 0,
            limit: u64::from(PAGE_LIMIT),
            delete_id: Some(delete_id.to_owned()),
        };
        let drained = absorbing(|| grants.drain(Json(request.clone())).call())
            .await?
            .into_inner();
        for (process_id, remaining) in &drained.revoked {
            let terminal = drained.ended.contains(process_id);
            tally.revoked(process_id, *remaining, terminal);
        }
        if drained.next_cursor.is_none() {
            break;
        }
    }
    if hold {
        cut_point(ctx, "delete.after_drain", session_id).await?;
    }
    let wakes = ctx.object_client::<SessionWakesClient>(session_id);
    let mut below = u64::MAX;
    loop {
        let (holders, next) = absorbing(|| wakes.holders_below(below).call())
            .await?
            .into_inner();
        forget_wakes_of(ctx, session_id, holders).await?;
        match next {
            Some(next) => below = next,
            None => break,
        }
    }
    absorbing(|| grants.end_delete(delete_id.to_owned()).call()).await?;
    Ok(tally)
}

/// Clears each of `holders`' wake target if it aims at the session, in
/// the process's own exclusive (idempotent) step. `forget_wakes` answers
/// `(0, false)`: kept for journals of releases that deleted wakes here.
async fn forget_wakes_of(
    ctx: &Context<'_>,
    session_id: &str,
    holders: Vec<String>,
) -> Result<(), TerminalError> {
    for process_id in holders {
        let process = ctx.object_client::<ProcessObjectClient>(&process_id);
        absorbing(|| process.forget_wakes(session_id.to_owned()).call()).await?;
    }
    Ok(())
}

/// Prunes `shard` page by page (each page prunes the rows its own prunes
/// move into it, see `ProcessDirectory::prune_page`).
async fn prune_shard(
    ctx: &Context<'_>,
    shard: u32,
    cutoff_ms: u64,
) -> Result<ProcessPruneReport, TerminalError> {
    let directory = ctx.object_client::<ProcessDirectoryClient>(shard.to_string());
    let mut report = ProcessPruneReport::default();
    let mut cursor = 0;
    loop {
        let request = PrunePageRequest { cutoff_ms, cursor };
        let page = absorbing(|| directory.prune_page(Json(request)).call())
            .await?
            .into_inner();
        report.pruned_processes += page.report.pruned_processes;
        report.pruned_events += page.report.pruned_events;
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return Ok(report),
        }
    }
}
