//! `EngineBaseline`: the engine baseline for `procreg bench`.
//!
//! A virtual object whose one exclusive handler does nothing. Calling it
//! through ingress costs exactly what Restate charges for an exclusive
//! keyed invocation (ingress, journal, per-key lock, endpoint round trip)
//! and nothing of ours, so `procreg bench` divides the registry's
//! throughput by it to report registry operations as a ratio of the raw
//! engine. It holds no state and calls nothing.

use restate_sdk::prelude::*;

/// The no-op virtual object `procreg bench` measures as the engine baseline.
#[derive(Debug)]
pub struct EngineBaseline;

#[restate_sdk::object(name = "EngineBaseline")]
impl EngineBaseline {
    /// Does nothing, exclusively: one keyed invocation with no state.
    /// Takes no input, so call it with no body and no content type.
    #[handler]
    async fn noop(&self, _ctx: ObjectContext<'_>) -> Result<(), TerminalError> {
        Ok(())
    }
}
