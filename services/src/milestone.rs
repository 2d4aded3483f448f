//! `ProcessMilestone`: a workflow per awaited milestone whose run parks on
//! an awakeable until the process logs the event (or ends). Hosts start it
//! and attach to it through ingress, the way they attach to
//! `ProcessTerminal`, so a milestone wait is engine-native: no polling, and
//! it survives a restart of the engine, of the endpoint or of the waiter.
//!
//! The key is [`MilestoneWait::key`]: the process incarnation, the event
//! type and the sequence waited past. The answer for a key never changes
//! (the log is append-only, and an incarnation that ended without the event
//! stays ended), so every waiter on the same milestone shares one run, and a
//! waiter whose connection was cut attaches again to the same answer. The
//! run refuses a body that does not match its key, so no caller can plant
//! another answer under a key.
//!
//! Calls `ProcessObject.park`, which never calls back.

use restate_process_registry::restate::wire::MilestoneWait;
use restate_process_registry::{ProcessError, ProcessEvent};
use restate_sdk::prelude::*;

use crate::errors::terminal;
use crate::input::Input;
use crate::process_object::{ParkRequest, ProcessObjectClient};

/// The workflow carrying one milestone wait.
#[derive(Debug)]
pub struct ProcessMilestone;

#[restate_sdk::workflow(name = "ProcessMilestone")]
impl ProcessMilestone {
    /// Resolves with the first matching event, or fails with the process's
    /// `AlreadyTerminal` / `UnknownProcess` error.
    #[handler]
    async fn run(
        &self,
        ctx: WorkflowContext<'_>,
        wait: Input<MilestoneWait>,
    ) -> Result<Json<ProcessEvent>, TerminalError> {
        let wait = wait.into_inner();
        if wait.key() != ctx.key() {
            return Err(terminal(ProcessError::invalid(format!(
                "milestone wait key `{}` does not name the wait it was sent",
                ctx.key()
            ))));
        }
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
        match found {
            Some(event) => Ok(Json(event)),
            None => parked.await,
        }
    }
}
