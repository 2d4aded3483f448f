//! Deterministic inputs for handlers: the clock through a journaled side
//! effect, tokens from the invocation's deterministic randomness.

use restate_process_registry::unix_now_ms;
use restate_sdk::prelude::*;

/// The registry clock, read once per call and journaled so replays see
/// the same instant.
pub(crate) async fn now_ms(ctx: &ObjectContext<'_>) -> Result<u64, TerminalError> {
    ctx.run(|| async { Ok(unix_now_ms()) }).name("now").await
}

/// A fresh token: the next draw of the SDK's generator, which the engine
/// seeds from the invocation id, so a replay draws the same sequence and
/// two draws in one invocation differ. Same shape as every earlier token
/// (`{prefix}-` and 16 hex digits); stored tokens are opaque and stay valid.
pub(crate) fn token(ctx: &mut ObjectContext<'_>, prefix: &str) -> String {
    format!("{prefix}-{:016x}", ctx.rand().random::<u64>())
}

/// The invocation's own token, its random seed: deterministic on replay,
/// one per invocation. Kept for incarnation ids because `register` writes
/// the id before it waits on the directory: a register of an earlier
/// release in flight across an in-place upgrade replays that write, and the
/// engine's journal check needs it to compute the same value.
pub(crate) fn seed_token(ctx: &ObjectContext<'_>, prefix: &str) -> String {
    format!("{prefix}-{:016x}", ctx.random_seed())
}
