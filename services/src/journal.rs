//! Deterministic inputs for handlers: the clock through a journaled side
//! effect, tokens from the invocation's deterministic random seed.

use restate_process_registry::unix_now_ms;
use restate_sdk::prelude::*;

/// The registry clock, read once per call and journaled so replays see
/// the same instant.
pub(crate) async fn now_ms(ctx: &ObjectContext<'_>) -> Result<u64, TerminalError> {
    ctx.run(|| async { Ok(unix_now_ms()) }).name("now").await
}

/// A token unique to this invocation and stable across its replays.
pub(crate) fn token(ctx: &ObjectContext<'_>, prefix: &str) -> String {
    format!("{prefix}-{:016x}", ctx.random_seed())
}
