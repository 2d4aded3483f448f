//! Engine-native terminal waits.

use async_trait::async_trait;

use crate::error::ProcessResult;
use crate::model::ProcessAwaitOutput;

/// Waits for a process's outcome through the engine that stores it (for
/// Restate: ingress attach to a durable promise) instead of polling.
///
/// When a [`ProcessWorkDriver`](crate::ProcessWorkDriver) has one, it is
/// authoritative: its errors reach the caller with no polling fallback.
#[async_trait]
pub trait ProcessAttach: Send + Sync {
    /// Resolves with the outcome once the process is terminal.
    async fn await_terminal(&self, process_id: &str) -> ProcessResult<ProcessAwaitOutput>;
}
