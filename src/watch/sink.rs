//! The host-facing event feed.

use async_trait::async_trait;

use crate::model::ProcessEvent;

/// Receives each appended event after its durable write: a best-effort
/// freshness feed, never the source of truth.
///
/// No retry, buffering or delivery guarantee: hosts that need every event
/// reconcile from `events_after`. Terminal events written by
/// `complete_process` are never emitted. `emit` cannot fail the append, but
/// it is awaited on the append path, so it must return quickly (hand slow
/// work to a channel or task).
#[async_trait]
pub trait ProcessEventSink: Send + Sync {
    /// Observes one appended event.
    async fn emit(&self, event: &ProcessEvent);
}
