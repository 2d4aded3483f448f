//! The host-facing event feed.

use async_trait::async_trait;

use crate::model::ProcessEvent;

/// Receives each event appended through the watched registry's
/// `append_event`, after its durable write: a best-effort freshness feed,
/// never the source of truth.
///
/// - No retry, buffering or delivery guarantee: an event can be durable
///   and never reach the sink (the host died in between). Hosts that need
///   every event reconcile from `events_after`.
/// - Terminal events written by `complete_process` are never emitted: it
///   writes through the inner registry. Wait for outcomes with
///   `ProcessWorkDriver::await_terminal`, not on the sink.
/// - An `append_event` of a type the process *declares* terminal is an
///   append like any other and is emitted (after its write, which ended the
///   process), as the original library's decorator does. So the sink can
///   see a terminal event, but only one a host appended itself; it still
///   is no completion signal, since `complete_process` ends processes
///   without one.
/// - An append answered from its replay key emits the first event again,
///   so a sink may see an event twice.
/// - `emit` cannot fail the append, but it is awaited on the append path,
///   so it must return quickly (hand slow work to a channel or task).
#[async_trait]
pub trait ProcessEventSink: Send + Sync {
    /// Observes one appended event.
    async fn emit(&self, event: &ProcessEvent);
}
