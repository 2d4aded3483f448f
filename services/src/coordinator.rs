//! `ProcessCoordinator`: an unkeyed service for the calls that span
//! processes. It holds no lock and decides nothing itself: each step is an
//! exclusive handler of the object that is the authority for what it
//! changes, and the coordinator's journal makes the sequence durable (after
//! a crash it resumes at the step it had reached; every step is idempotent
//! or journaled, so none is applied twice).
//!
//! ## Why a transfer is atomic
//!
//! The source session's `SessionGrants` is the authority for its grants.
//! `take` checks that the source scope holds *every* listed process and
//! gives them all up in one exclusive handler, or refuses and changes
//! nothing. Revokes, other transfers out of the session and session deletes
//! are exclusive handlers of the same object, so each happens wholly before
//! or wholly after the take: a revoke that comes first makes the transfer
//! fail with nothing moved; one that comes after finds the grant gone. Then
//! `give` holds the taken grants under the destination scope; the
//! coordinator's journal guarantees it runs once the take has, so a taken
//! grant is never lost and, having left the source, is never held twice.
//! The transfer is acknowledged only after both steps, so its caller reads
//! its own write everywhere. While the grants are between the two steps a
//! concurrent reader sees them in neither scope; and a delete of the
//! *destination* session that overlaps an in-flight transfer may finish
//! before the moved grants arrive (they then survive it, as if the transfer
//! had come second).
//!
//! ## Session delete
//!
//! `SessionGrants::drain` revokes the session's grants in batches (each one
//! exclusive handler) until none is left, so a grant made while the delete
//! runs is either revoked and reported, or made after the delete's last
//! batch and kept: the report lists exactly what was revoked. Each batch
//! learns, from the process's own exclusive `mirror_drop`, how many grants
//! the process still carries and whether it has ended, so the orphaned /
//! preserved split (`SessionDeleteTally`, shared with the in-memory
//! registry) is what the process itself saw when it lost the grant; an
//! ended process is neither. Then every process `SessionWakes` lists
//! clears its wake target if it aims at the session, in its own exclusive
//! handler, and leaves the index. No wake event is deleted or
//! acknowledged: each keeps the scope it was aimed at.
//!
//! A crash between any two of these steps resumes at the journaled step;
//! every step is idempotent (a grant already dropped answers its remaining
//! count again, a cleared target stays cleared), so nothing is counted or
//! cleared twice. A process registered with a wake target at the session
//! while the delete runs notes itself in the index before its registration
//! is acknowledged: it is either listed and cleared, or registered after
//! the index page was read and keeps its target (as if it came second).
//!
//! ## Prune
//!
//! Each directory shard is pruned page by page (`ProcessDirectory::prune_page`,
//! at most one page of rows per step); each row re-checks under its own lock.

use restate_process_registry::restate::wire::{
    PendingTransfer, PruneShardRequest, RepairReport, TransferRequest, DIRECTORY_SHARDS,
    PAGE_LIMIT,
};
use restate_process_registry::rules::grants::SessionDeleteTally;
use restate_process_registry::rules::limits::check_key;
use restate_process_registry::{ProcessPruneReport, ProcessSessionDeleteReport};
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
    #[handler]
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
    #[handler]
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
        complete_pending(&ctx, &from.session_id).await?;
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
    #[handler]
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
            for process_id in holders {
                let process = ctx.object_client::<ProcessObjectClient>(&process_id);
                absorbing(|| process.forget_wakes(session_id.clone()).call()).await?;
            }
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
    #[handler]
    async fn delete_session_v2(
        &self,
        mut ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<ProcessSessionDeleteReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        let delete_id = fresh_id(&mut ctx, "delete");
        complete_pending(&ctx, &session_id).await?;
        let tally = drive_delete(&ctx, &session_id, &delete_id, true).await?;
        Ok(Json(tally.report(&session_id)))
    }

    /// Completes every transfer out of `session_id` and every delete of it
    /// that was cut off (its coordinator killed), idempotently; answers
    /// what it completed (`procreg check --repair`).
    #[handler]
    async fn repair_session(
        &self,
        ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<RepairReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        Ok(Json(complete_pending(&ctx, &session_id).await?))
    }

    /// `prune_terminal_processes`: every shard, page by page.
    #[handler]
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
    #[handler]
    async fn prune_shard(
        &self,
        ctx: Context<'_>,
        request: Input<PruneShardRequest>,
    ) -> Result<Json<ProcessPruneReport>, TerminalError> {
        let PruneShardRequest { cutoff_ms, shard } = request.into_inner();
        Ok(Json(prune_shard(&ctx, shard, cutoff_ms).await?))
    }
}

/// Completes the cut-off intents `session_id` records.
async fn complete_pending(
    ctx: &Context<'_>,
    session_id: &str,
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
    for delete_id in pending.deletes {
        drive_delete(ctx, session_id, &delete_id, false).await?;
        report.deletes.push(delete_id);
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
        for process_id in holders {
            // Answers `(0, false)`: kept for journals of releases that
            // deleted wakes here.
            let process = ctx.object_client::<ProcessObjectClient>(&process_id);
            absorbing(|| process.forget_wakes(session_id.to_owned()).call()).await?;
        }
        match next {
            Some(next) => below = next,
            None => break,
        }
    }
    absorbing(|| grants.end_delete(delete_id.to_owned()).call()).await?;
    Ok(tally)
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
