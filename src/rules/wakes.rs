//! Wake bookkeeping shared by every registry: each wake-carrying event is
//! unacknowledged until acked, and remembers the session scope it was
//! delivered to (if any) so a session delete can drop it.

use crate::error::{ProcessError, ProcessResult};
use crate::model::ProcessEvent;

/// `ack_wake` accepts only an existing event that carries a wake.
pub fn check_ack(
    process_id: &str,
    sequence: u64,
    event: Option<&ProcessEvent>,
) -> ProcessResult<()> {
    let event = event.ok_or_else(|| {
        ProcessError::invalid(format!("process `{process_id}` has no event {sequence}"))
    })?;
    if event.semantics.wake.is_none() {
        return Err(ProcessError::invalid(format!(
            "event {sequence} of process `{process_id}` carries no wake"
        )));
    }
    Ok(())
}
