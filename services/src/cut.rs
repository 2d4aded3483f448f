//! Cut points: named places between two steps of a multi-step handler
//! where a test holds an invocation, to kill or cancel it exactly there
//! and check that the prefix of steps it ran is invisible or repaired.
//!
//! They exist only with the `cut-points` feature, which only the tests
//! turn on; without it [`hold`] is an empty function and adds no journal
//! entry. With it, an invocation holds at point `name` when the subject it
//! names (an object key or a process id) starts with `cut.{name}.`: it
//! awaits an awakeable nobody completes, keeping its object's lock, until
//! it is killed, or cancelled (the await then fails with the engine's 409,
//! exactly as a cancel landing on the handler's next step would).

use restate_sdk::prelude::*;

/// Holds the invocation at point `name` when `subject` asks for it (see
/// the module docs); a no-op otherwise.
#[cfg(feature = "cut-points")]
#[allow(dead_code)] // until the first handler names a point
pub(crate) async fn hold<'ctx, C: ContextAwakeables<'ctx>>(
    ctx: &C,
    name: &str,
    subject: &str,
) -> Result<(), TerminalError> {
    let marked = subject
        .strip_prefix("cut.")
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with('.'));
    if !marked {
        return Ok(());
    }
    tracing::info!(point = name, subject, "holding at a cut point");
    let (_, never) = ctx.awakeable::<()>();
    never.await
}

/// Without the `cut-points` feature: nothing.
#[cfg(not(feature = "cut-points"))]
#[inline(always)]
#[allow(dead_code)] // until the first handler names a point
pub(crate) async fn hold<'ctx, C: ContextAwakeables<'ctx>>(
    _ctx: &C,
    _name: &str,
    _subject: &str,
) -> Result<(), TerminalError> {
    Ok(())
}
