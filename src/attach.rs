//! Engine-native waits: terminal outcomes and milestone events.

use async_trait::async_trait;

use crate::error::ProcessResult;
use crate::model::{ProcessAwaitOutput, ProcessEvent};

/// Waits for a process's outcome through the engine that stores it (for
/// Restate: ingress attach to a durable promise) instead of polling.
///
/// When a [`ProcessWorkDriver`](crate::ProcessWorkDriver) has one, it is
/// authoritative: its errors reach the caller with no polling fallback.
#[async_trait]
pub trait ProcessAttach: Send + Sync {
    /// Resolves with the outcome once the process is terminal.
    async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput>;

    /// The first `event_type` event above `after_sequence`, through the
    /// engine; fails with `AlreadyTerminal` when the process ends without
    /// one. `None` when this attach has no engine-native milestone waits
    /// (the default), so the driver waits with its awaiter instead.
    async fn await_event(
        &self,
        process_id: &str,
        event_type: &str,
        after_sequence: u64,
    ) -> Option<ProcessResult<ProcessEvent>> {
        let _ = (process_id, event_type, after_sequence);
        None
    }
}
