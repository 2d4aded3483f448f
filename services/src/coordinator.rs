//! `ProcessCoordinator`: an unkeyed service for the calls that span
//! processes. Being a service it holds no lock, and its journal makes each
//! call durable: once a transfer, session delete or prune is acknowledged,
//! every step of it has happened, even across crashes.
//!
//! It calls `ProcessObject` (exclusive) and reads `SessionGrants` and
//! `ProcessDirectory` (shared); nothing calls it back.

use restate_process_registry::restate::wire::{TransferRequest, DIRECTORY_SHARDS};
use restate_process_registry::rules::limits::check_key;
use restate_process_registry::{
    ProcessError, ProcessHandleGrant, ProcessPruneReport, ProcessRecord, ProcessSessionDeleteReport,
};
use restate_sdk::prelude::*;

use crate::directory::ProcessDirectoryClient;
use crate::errors::{terminal, OrTerminal};
use crate::input::Input;
use crate::process_object::{MoveGrant, ProcessObjectClient, SessionForgotten};
use crate::session_grants::SessionGrantsClient;
use crate::state::in_order;

/// The cross-process coordinator.
pub struct ProcessCoordinator;

#[restate_sdk::service(name = "ProcessCoordinator")]
impl ProcessCoordinator {
    /// `transfer_handle_grants`: checks every id first, then moves each grant.
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
        let from_id = from.id();
        let held: Vec<ProcessHandleGrant> = ctx
            .object_client::<SessionGrantsClient>(&from.session_id)
            .list(Input(from.clone()))
            .call()
            .await?
            .into_inner();
        for process_id in &process_ids {
            if held.iter().any(|grant| &grant.process_id == process_id) {
                continue;
            }
            let row: Option<ProcessRecord> = ctx
                .object_client::<ProcessObjectClient>(process_id)
                .get()
                .call()
                .await?
                .into_inner();
            let error = match row {
                None => ProcessError::unknown(process_id),
                Some(_) => ProcessError::invalid(format!(
                    "scope `{from_id}` holds no grant on process `{process_id}`"
                )),
            };
            return Err(terminal(error));
        }
        if from_id == to.id() {
            return Ok(Json(()));
        }
        for process_id in &process_ids {
            let request = MoveGrant {
                from: from.clone(),
                to: to.clone(),
            };
            ctx.object_client::<ProcessObjectClient>(process_id)
                .move_grant(Json(request))
                .call()
                .await?;
        }
        Ok(Json(()))
    }

    /// `delete_session_process_state`: visits every process tied to the
    /// session, in id order.
    #[handler]
    async fn delete_session(
        &self,
        ctx: Context<'_>,
        session_id: String,
    ) -> Result<Json<ProcessSessionDeleteReport>, TerminalError> {
        check_key("session id", &session_id).or_terminal()?;
        let members: Vec<String> = ctx
            .object_client::<SessionGrantsClient>(&session_id)
            .members()
            .call()
            .await?
            .into_inner();
        let mut report = ProcessSessionDeleteReport {
            session_id: session_id.clone(),
            ..ProcessSessionDeleteReport::default()
        };
        for process_id in members {
            let forgotten: SessionForgotten = ctx
                .object_client::<ProcessObjectClient>(&process_id)
                .forget_session(session_id.clone())
                .call()
                .await?
                .into_inner();
            report.revoked_handle_count += forgotten.revoked;
            report.deleted_wake_count += forgotten.deleted_wakes;
            if forgotten.revoked > 0 {
                if forgotten.remaining_grants == 0 {
                    report.orphaned_process_ids.push(process_id);
                } else {
                    report.preserved_process_ids.push(process_id);
                }
            }
        }
        Ok(Json(report))
    }

    /// `prune_terminal_processes`: asks each shard for old terminal rows,
    /// then each of those processes to delete itself (it re-checks).
    #[handler]
    async fn prune(
        &self,
        ctx: Context<'_>,
        cutoff_ms: Input<u64>,
    ) -> Result<Json<ProcessPruneReport>, TerminalError> {
        let cutoff_ms = cutoff_ms.into_inner();
        let shards = (0..DIRECTORY_SHARDS).map(|shard| {
            ctx.object_client::<ProcessDirectoryClient>(shard.to_string())
                .terminal_before(cutoff_ms)
                .call()
        });
        let candidates: Vec<String> = in_order(shards)
            .await?
            .into_iter()
            .flat_map(Json::into_inner)
            .collect();
        let prunes = candidates.iter().map(|process_id| {
            ctx.object_client::<ProcessObjectClient>(process_id)
                .prune(Json(cutoff_ms))
                .call()
        });
        let mut report = ProcessPruneReport::default();
        for pruned in in_order(prunes).await? {
            if let Some(events) = pruned.into_inner() {
                report.pruned_processes += 1;
                report.pruned_events += events;
            }
        }
        Ok(Json(report))
    }
}
