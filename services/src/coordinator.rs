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
    PruneShardRequest, TransferRequest, DIRECTORY_SHARDS, PAGE_LIMIT,
};
use restate_process_registry::rules::grants::SessionDeleteTally;
use restate_process_registry::rules::limits::check_key;
use restate_process_registry::{ProcessPruneReport, ProcessSessionDeleteReport};
use restate_sdk::prelude::*;

use crate::directory::{ProcessDirectoryClient, PrunePageRequest};
use crate::errors::OrTerminal;
use crate::input::Input;
use crate::process_object::ProcessObjectClient;
use crate::session_grants::{DrainRequest, GiveRequest, SessionGrantsClient, TakeRequest};
use crate::session_wakes::SessionWakesClient;

/// The cross-process coordinator.
#[derive(Debug)]
pub struct ProcessCoordinator;

#[restate_sdk::service(name = "ProcessCoordinator")]
impl ProcessCoordinator {
    /// `transfer_handle_grants`: take at the source, then give at the destination.
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
        let taken = ctx
            .object_client::<SessionGrantsClient>(&from.session_id)
            .take(Json(TakeRequest {
                from,
                process_ids,
                check_only,
            }))
            .call()
            .await?
            .into_inner();
        if !check_only {
            ctx.object_client::<SessionGrantsClient>(&to.session_id)
                .give(Json(GiveRequest { to, grants: taken }))
                .call()
                .await?;
        }
        Ok(Json(()))
    }

    /// `delete_session_process_state`: drain the session's grants, then
    /// clear the wake target of every process the session's index lists.
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
            };
            let drained = grants.drain(Json(request)).call().await?.into_inner();
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
            let (holders, next) = wakes.holders(cursor).call().await?.into_inner();
            for process_id in holders {
                // Answers `(0, false)`: kept for journals of releases that
                // deleted wakes here.
                ctx.object_client::<ProcessObjectClient>(&process_id)
                    .forget_wakes(session_id.clone())
                    .call()
                    .await?;
            }
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(Json(tally.report(&session_id)))
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

/// Prunes `shard` page by page.
async fn prune_shard(
    ctx: &Context<'_>,
    shard: u32,
    cutoff_ms: u64,
) -> Result<ProcessPruneReport, TerminalError> {
    let directory = ctx.object_client::<ProcessDirectoryClient>(shard.to_string());
    let mut report = ProcessPruneReport::default();
    let mut cursor = 0;
    loop {
        let page = directory
            .prune_page(Json(PrunePageRequest { cutoff_ms, cursor }))
            .call()
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
