//! How registry handlers meet a cancel from the admin API.
//!
//! A cancel makes the invocation's next await fail once with the engine's
//! 409 "cancelled" (and cancels the calls it has in flight). Every
//! multi-step registry handler has a point of no return, its first state
//! write:
//!
//! - **before it**, a cancel ends the call with nothing written; the
//!   caller reads it as `Unavailable` ("cancelled") and may call again;
//! - **after it**, the cancel is absorbed: the step it interrupted is
//!   issued again ([`finish_step`]), and the handler runs to its end.
//!   Every step after the first write only completes what that write
//!   started (an index entry, a mirror, the other side of a transfer), so
//!   there is nothing to undo and stopping half way would leave the
//!   registry disagreeing with itself.
//!
//! A kill, which runs nothing more, is met differently: each handler
//! records its intent with its first write, and the next handler touching
//! the same object (or `procreg check --repair`) completes it; the
//! handlers' docs argue each cut.

use std::future::Future;

use restate_sdk::prelude::*;

use crate::cut;

/// Whether `error` is the engine's cancel signal (model errors travel as
/// documents, never as this bare text).
pub(crate) fn is_cancel(error: &TerminalError) -> bool {
    error.code() == 409 && error.message() == "cancelled"
}

/// Runs one step after the point of no return: `call`, issued again if a
/// cancel interrupts it, so the handler completes what it started. The
/// step is cut point `point` for `subject` (see `cut`).
pub(crate) async fn finish_step<'a, C, T, F, Fut>(
    ctx: &'a C,
    point: &str,
    subject: &str,
    call: F,
) -> Result<T, TerminalError>
where
    C: ContextTimers<'a>,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, TerminalError>>,
{
    match cut::hold(ctx, point, subject).await {
        Err(error) if !is_cancel(&error) => return Err(error),
        _ => {}
    }
    match call().await {
        Err(error) if is_cancel(&error) => {
            tracing::info!(point, subject, "cancel absorbed; finishing the step");
            call().await
        }
        done => done,
    }
}
