//! `ProcessRunner`: the workflow that runs one process incarnation's body
//! durably (see [`ProcessRunner`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use restate_process_registry::restate::codes::{readable, INVALID_INPUT};
use restate_process_registry::unix_now_ms;
use restate_process_registry::{
    ProcessAwaitOutput, ProcessLease, ProcessLeaseClaimOutcome, ProcessRecord, ProcessStarted,
};
use restate_sdk::prelude::*;
use serde_json::json;

use super::admit::{admit, process_of, runner_owner, RUNNER_LEASE_TTL_MS};
use super::body::ProcessBody;
use super::calls::ObjectCalls;
use super::context::RunContext;
use super::outcome::{self, bounded, RunReport};

/// Failure code recorded when the body's own outcome was refused by the
/// registry (e.g. larger than the document limit).
pub const OUTCOME_REFUSED: &str = "outcome_refused";

/// The workflow running process bodies, keyed by the process's
/// incarnation key (`{process id}#i-{16 hex}`, the key of its
/// `ProcessTerminal` workflow too), so there is at most one run per
/// incarnation. Bind it with
/// [`bind_services_with_runner`](crate::bind_services_with_runner).
///
/// `run`, from the top:
/// 1. reads the process's current incarnation key and its row (two shared
///    `ProcessObject` calls) and runs only the current incarnation of a
///    non-terminal row with engine input that is not `ExternallyOwned` and
///    that nobody has started yet; otherwise it returns
///    [`RunReport::Skipped`] without touching the row. A restart is a
///    replay of this run's journal, never a fresh run, so a started
///    `OwnerBound` body is resumed, not re-run;
/// 2. claims the row's lease for the runner (owner `ProcessRunner`, the
///    key's incarnation, 30 days) and records the first start with it; a
///    busy lease or a start someone else recorded ends the run, skipped;
/// 3. runs the body under `catch_unwind`: an error or a panic becomes a
///    `Failed` outcome with the reason (codes `body_failed`,
///    `body_panicked`), never a retry of the whole body; the outcome is
///    journaled before it is written;
/// 4. completes the row through `ProcessObject.complete` (so attach,
///    waiters and the directory see it) and releases the lease.
///
/// A row whose abandon was requested before its run started is completed
/// `Abandoned` without running. Everything the run does is a journaled
/// call or step, so after the endpoint dies the engine replays the run:
/// nothing is done twice except a step that was not journaled yet.
pub struct ProcessRunner {
    body: Arc<dyn ProcessBody>,
}

impl std::fmt::Debug for ProcessRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRunner").finish_non_exhaustive()
    }
}

impl ProcessRunner {
    /// A runner for `body`.
    pub fn new(body: impl ProcessBody) -> Self {
        Self {
            body: Arc::new(body),
        }
    }
}

#[restate_sdk::workflow(name = "ProcessRunner")]
impl ProcessRunner {
    /// Runs the body of the process incarnation this workflow is keyed by
    /// (see the module docs). Private: `ProcessObject` starts it, at
    /// registration or through its `start_run` handler.
    #[handler(name = "run", ingress_private)]
    async fn run(&self, ctx: WorkflowContext<'_>) -> Result<Json<RunReport>, TerminalError> {
        let key = ctx.key().to_owned();
        let Some(process_id) = process_of(&key) else {
            return Ok(Json(RunReport::skipped(format!(
                "`{key}` is not an incarnation key"
            ))));
        };
        let calls = ObjectCalls::new(&ctx, process_id);
        let report = drive(self.body.as_ref(), &ctx, &calls, &key).await?;
        if let RunReport::Skipped { reason } = &report {
            tracing::debug!(key, reason, "process run skipped");
        }
        Ok(Json(report))
    }
}

/// Admits the row, leases it, runs it and releases the lease.
async fn drive(
    body: &dyn ProcessBody,
    ctx: &WorkflowContext<'_>,
    calls: &ObjectCalls<'_>,
    key: &str,
) -> Result<RunReport, TerminalError> {
    let (target, row) = match calls.target_and_row().await {
        Ok(read) => read,
        Err(error) => {
            return Ok(RunReport::skipped(format!(
                "reading the process failed: {}",
                readable(error.message())
            )))
        }
    };
    let row = match admit(key, &target.workflow_key, row) {
        Ok(row) => row,
        Err(reason) => return Ok(RunReport::skipped(reason)),
    };
    let lease = match calls
        .claim_lease(runner_owner(key), RUNNER_LEASE_TTL_MS)
        .await
    {
        Ok(ProcessLeaseClaimOutcome::Acquired(lease)) => lease,
        Ok(ProcessLeaseClaimOutcome::Busy { holder }) => {
            return Ok(RunReport::skipped(format!(
                "the lease is held by `{}`",
                holder.owner.owner_id
            )))
        }
        Err(error) => {
            return Ok(RunReport::skipped(format!(
                "claiming the lease failed: {}",
                readable(error.message())
            )))
        }
    };
    let report = leased(body, ctx, calls, row, &lease).await;
    // Released whatever happened; a stale token is a no-op.
    if let Err(error) = calls.complete_lease((&lease).into()).await {
        tracing::warn!(
            key,
            error = %readable(error.message()),
            "releasing the run's lease failed"
        );
    }
    report
}

/// With the lease held: records the start, runs the body, completes the row.
async fn leased(
    body: &dyn ProcessBody,
    ctx: &WorkflowContext<'_>,
    calls: &ObjectCalls<'_>,
    row: ProcessRecord,
    lease: &ProcessLease,
) -> Result<RunReport, TerminalError> {
    if let Some(request) = &row.abandon_request {
        let evidence = json!({ "reason": "abandon_requested", "request": request });
        return finish(calls, ProcessAwaitOutput::abandoned(evidence)).await;
    }
    let started_at_ms = ctx.run(|| async { Ok(unix_now_ms()) }).name("now").await?;
    let started = ProcessStarted {
        owner: lease.owner.clone(),
        started_at_ms,
    };
    let record = match calls.record_first_started(started).await {
        Ok(record) => record,
        Err(error) => {
            return Ok(RunReport::skipped(format!(
                "recording the start failed: {}",
                readable(error.message())
            )))
        }
    };
    let ours = record
        .first_started
        .as_ref()
        .is_some_and(|s| s.owner.same_incarnation(&lease.owner));
    if !ours {
        return Ok(RunReport::skipped(
            "another owner started the process first",
        ));
    }
    let run_ctx = RunContext::new(ctx, calls, record);
    let output = match AssertUnwindSafe(body.run(&run_ctx)).catch_unwind().await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => outcome::failed(&error),
        Err(panic) => outcome::panicked(panic.as_ref()),
    };
    // Journaled, so a replay records the same outcome even when the body's
    // error text differs from one attempt to the next.
    let output = ctx
        .run(|| async move { Ok(Json(output)) })
        .name("outcome")
        .await?
        .into_inner();
    finish(calls, output).await
}

/// Completes the row with `output`; an outcome the registry refuses is
/// replaced by a failure saying why.
async fn finish(
    calls: &ObjectCalls<'_>,
    output: ProcessAwaitOutput,
) -> Result<RunReport, TerminalError> {
    let completed = match calls.complete(output).await {
        Err(error) if error.code() == INVALID_INPUT => {
            let reason = format!(
                "the body's outcome was refused: {}",
                readable(error.message())
            );
            let fallback = ProcessAwaitOutput::failure(OUTCOME_REFUSED, bounded(&reason));
            calls.complete(fallback).await
        }
        other => other,
    };
    let record = match completed {
        Ok(record) => record,
        // Someone else ended the row meanwhile: report what it ended with.
        Err(error) => calls
            .row()
            .await?
            .filter(ProcessRecord::is_terminal)
            .ok_or(error)?,
    };
    match record.status.await_output() {
        Some(output) => Ok(RunReport::Finished {
            output: output.clone(),
        }),
        None => Ok(RunReport::skipped("the process did not end")),
    }
}
