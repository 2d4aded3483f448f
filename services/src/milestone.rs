//! `ProcessMilestone`: a workflow per milestone waiter whose run parks on
//! an awakeable until the process logs the event, the process ends, or the
//! park's time to live runs out. Hosts never start it: they ask
//! `ProcessObject.milestone` with a random wait id, and the object sends
//! the run, built from its own key and row, then they attach to it through
//! ingress, the way they attach to `ProcessTerminal`. A milestone wait is
//! engine-native (no polling) and survives a restart of the engine, of the
//! endpoint or of the waiter.
//!
//! The key is [`MilestoneWait::key`]: the waiter's id, the process
//! incarnation, the event type and the sequence waited past. Each waiter
//! has its own run, so nothing is shared or kept across waiters; a waiter
//! whose connection was cut attaches again to its own run. `run` is
//! private: no caller can start a run or choose what it answers.
//!
//! The run answers a [`MilestoneOutcome`], never a refusal: the event, or
//! `Ended` (the process ended without it), or `Expired`. It waits on
//! `select!` of its awakeable and a durable sleep of the wait's park TTL
//! ([`MilestoneWait::park_ttl_ms`]); when the sleep wins it removes its own
//! park by id (`ProcessObject.unpark`) and answers `Expired`, and so it
//! does when the object expired it to make room for newer waits. A waiter
//! that still waits then starts a fresh wait, whose first look finds the
//! event if an append settled the park as it expired.
//!
//! Runs the previous release journaled (no wait id) replay as they ran:
//! `ProcessObject.park`, then the awakeable alone.
//!
//! Calls `ProcessObject.park_wait` and `unpark`, which never call back.

use std::time::Duration;

use restate_process_registry::restate::codes::ALREADY_TERMINAL;
use restate_process_registry::restate::wire::{MilestoneOutcome, MilestoneWait};
use restate_process_registry::{ProcessError, ProcessEvent};
use restate_sdk::prelude::*;

use crate::errors::terminal;
use crate::input::Input;
use crate::process_object::{ParkAnswer, ParkRequest, ProcessObjectClient, Unpark, EVICTED};

/// The workflow carrying one waiter's milestone wait.
#[derive(Debug)]
pub struct ProcessMilestone;

#[restate_sdk::workflow(name = "ProcessMilestone")]
impl ProcessMilestone {
    /// Sent by `ProcessObject.milestone` only. Parks the wait and answers
    /// what it came to.
    #[handler(name = "run", ingress_private)]
    async fn run(
        &self,
        ctx: WorkflowContext<'_>,
        wait: Input<MilestoneWait>,
    ) -> Result<Json<MilestoneOutcome>, TerminalError> {
        let wait = wait.into_inner();
        if wait.key() != ctx.key() {
            return Err(terminal(ProcessError::invalid(format!(
                "milestone wait key `{}` does not name the wait it was sent",
                ctx.key()
            ))));
        }
        if wait.wait_id.is_none() {
            return previous_release(&ctx, wait).await;
        }
        let (awakeable_id, woken) = ctx.awakeable::<Json<ProcessEvent>>();
        let object = ctx.object_client::<ProcessObjectClient>(wait.process_id.clone());
        let request = ParkRequest {
            wait: wait.clone(),
            awakeable_id: awakeable_id.clone(),
        };
        let id = match object.park_wait(Json(request)).call().await?.into_inner() {
            ParkAnswer::Found { event } => return Ok(Json(MilestoneOutcome::Found { event })),
            ParkAnswer::Ended => return Ok(Json(MilestoneOutcome::Ended)),
            ParkAnswer::Parked { id } => id,
        };
        let ttl = Duration::from_millis(wait.park_ttl_ms());
        restate_sdk::select! {
            woken = woken => match woken {
                Ok(Json(event)) => Ok(Json(MilestoneOutcome::Found { event })),
                Err(failure) if failure.code() == EVICTED => Ok(Json(MilestoneOutcome::Expired)),
                Err(failure) if failure.code() == ALREADY_TERMINAL => {
                    Ok(Json(MilestoneOutcome::Ended))
                }
                Err(failure) => Err(failure),
            },
            _ = ctx.sleep(ttl) => {
                // Gone already (an append or the end settled it as the
                // sleep fired): the fresh wait the waiter starts finds out.
                object.unpark(Json(Unpark { id, awakeable_id })).call().await?;
                Ok(Json(MilestoneOutcome::Expired))
            },
            // Cancelled from the admin API: handled as an early expiry, so
            // the park goes and its waiter, if still there, asks again.
            on_cancel => {
                object.unpark(Json(Unpark { id, awakeable_id })).call().await?;
                Ok(Json(MilestoneOutcome::Expired))
            }
        }
    }
}

/// A run journaled by the previous release: the same commands in the same
/// order, so its journal replays.
async fn previous_release(
    ctx: &WorkflowContext<'_>,
    wait: MilestoneWait,
) -> Result<Json<MilestoneOutcome>, TerminalError> {
    let (awakeable_id, parked) = ctx.awakeable::<Json<ProcessEvent>>();
    let request = ParkRequest {
        wait: wait.clone(),
        awakeable_id,
    };
    let found = ctx
        .object_client::<ProcessObjectClient>(wait.process_id)
        .park(Json(request))
        .call()
        .await?
        .into_inner();
    let event = match found {
        Some(event) => event,
        None => parked.await?.into_inner(),
    };
    Ok(Json(MilestoneOutcome::Found { event }))
}
