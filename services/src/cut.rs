//! Cut points: named places between two steps of a multi-step handler
//! where a test holds an invocation, to kill or cancel it exactly there
//! and check that the prefix of steps it ran is invisible or repaired.
//!
//! They exist only with the `cut-points` feature, which only the tests
//! turn on; without it [`hold`] is an empty function and adds no journal
//! entry. With it, an invocation holds at point `name` when the subject it
//! names (an object key or a process id) starts with `cut.{name}.`: it
//! sleeps for ten years (a `Sleep` entry tests wait for in the admin API's
//! `sys_journal`; no registry handler sleeps otherwise), keeping its
//! object's lock, until it is killed, or cancelled (the await then fails
//! with the engine's 409,
//! exactly as a cancel landing on the handler's next step would). Point
//! names are `[a-z_]` words, none a prefix of another up to a dot.

use std::future::Future;

use restate_sdk::prelude::*;

/// Holds the invocation at point `name` when `subject` asks for it (see
/// the module docs); a no-op otherwise.
#[cfg(feature = "cut-points")]
pub(crate) fn hold<'a, C>(
    ctx: &'a C,
    name: &str,
    subject: &str,
) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a
where
    C: ContextTimers<'a>,
{
    let marked = subject
        .strip_prefix("cut.")
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with('.'));
    let held = marked.then(|| {
        tracing::info!(point = name, subject, "holding at a cut point");
        ctx.sleep(FOREVER)
    });
    async move {
        match held {
            Some(held) => held.await,
            None => Ok(()),
        }
    }
}

/// Longer than any test: a held invocation waits for its kill or cancel.
#[cfg(feature = "cut-points")]
const FOREVER: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Without the `cut-points` feature: nothing.
#[cfg(not(feature = "cut-points"))]
pub(crate) fn hold<'a, C>(
    _ctx: &'a C,
    _name: &str,
    _subject: &str,
) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a
where
    C: ContextTimers<'a>,
{
    std::future::ready(Ok(()))
}
