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
//!
//! Before it awaits, a held invocation journals a side effect named
//! `cut.{name}`, so a test can tell (from the server's `sys_journal`) that
//! it reached the point, and kill or cancel it exactly there.

use restate_sdk::prelude::*;

/// Whether `subject` asks to be held at point `name`.
/// Journals the point's step (`cut.{name}`, which tests look for in
/// `sys_journal`) and awaits an awakeable nobody completes. A macro, not a
/// function: each context type's `run` closure must stay concrete.
#[cfg(feature = "cut-points")]
macro_rules! hold_here {
    ($ctx:expr, $name:expr, $subject:expr) => {{
        tracing::info!(point = $name, subject = $subject, "holding at a cut point");
        $ctx.run(|| async { Ok(()) })
            .name(format!("cut.{}", $name))
            .await?;
        let (_, never) = $ctx.awakeable::<()>();
        never.await
    }};
}

#[cfg(feature = "cut-points")]
fn marked(name: &str, subject: &str) -> bool {
    subject
        .strip_prefix("cut.")
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Holds an object's invocation at point `name` when `subject` asks for
/// it, once per object: the object remembers it held there
/// (`cut.held/{name}`), so the step issued again after a kill runs on.
#[cfg(feature = "cut-points")]
pub(crate) async fn hold_object(
    ctx: &ObjectContext<'_>,
    name: &str,
    subject: &str,
) -> Result<(), TerminalError> {
    if !marked(name, subject) {
        return Ok(());
    }
    let key = format!("cut.held/{name}");
    if ctx.get::<bool>(&key).await?.is_some() {
        return Ok(());
    }
    ctx.set(&key, true);
    hold_here!(ctx, name, subject)
}

/// Holds a service's invocation at point `name` when `subject` asks for it.
#[cfg(feature = "cut-points")]
pub(crate) async fn hold_service(
    ctx: &Context<'_>,
    name: &str,
    subject: &str,
) -> Result<(), TerminalError> {
    if !marked(name, subject) {
        return Ok(());
    }
    hold_here!(ctx, name, subject)
}

/// Without the `cut-points` feature: nothing.
#[cfg(not(feature = "cut-points"))]
#[inline(always)]
pub(crate) async fn hold_object(
    _ctx: &ObjectContext<'_>,
    _name: &str,
    _subject: &str,
) -> Result<(), TerminalError> {
    Ok(())
}

/// Without the `cut-points` feature: nothing.
#[cfg(not(feature = "cut-points"))]
#[inline(always)]
pub(crate) async fn hold_service(
    _ctx: &Context<'_>,
    _name: &str,
    _subject: &str,
) -> Result<(), TerminalError> {
    Ok(())
}

/// How long to delay a one-way message at point `name` when `subject` asks
/// for it: the engine may deliver a send late (it goes through an outbox,
/// across partitions), and a test makes that lateness certain.
#[cfg(feature = "cut-points")]
pub(crate) fn delay(name: &str, subject: &str) -> Option<std::time::Duration> {
    marked(name, subject).then(|| std::time::Duration::from_secs(3))
}

/// Without the `cut-points` feature: never.
#[cfg(not(feature = "cut-points"))]
#[inline(always)]
pub(crate) fn delay(_name: &str, _subject: &str) -> Option<std::time::Duration> {
    None
}
