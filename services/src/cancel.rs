//! Absorbing a cancel: the engine's cancel makes an invocation's next await
//! fail once with code 409 and the bare text "cancelled" (and cancels its
//! in-flight child calls); later awaits work normally. A multi-step
//! handler whose steps are idempotent re-issues the step the cancel hit,
//! so the operation as a whole still finishes; see each service's docs
//! for which handlers absorb a cancel and which refuse it by design.
//!
//! A call whose callee was killed answers the same way (409, "killed"),
//! and is issued again too: every step this is used on is idempotent, so
//! a killed step is simply run again (its predecessor's writes stay).

use std::future::Future;

use restate_sdk::prelude::*;

/// How many cancels one step absorbs before it gives up (each cancel fails
/// one await; an operator cancelling again and again is told so).
const ABSORBED: usize = 8;

/// Whether `error` is the engine's cancel (or kill) of an invocation, not a
/// model error: model errors travel as a JSON document (see `errors`), the
/// engine's as bare text.
pub(crate) fn is_cancel(error: &TerminalError) -> bool {
    error.code() == 409 && !error.message().trim_start().starts_with('{')
}

/// Runs `step`, issuing it again when a cancel failed it.
pub(crate) async fn absorbing<T, F, Fut>(mut step: F) -> Result<T, TerminalError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TerminalError>>,
{
    let mut left = ABSORBED;
    loop {
        match step().await {
            Err(error) if left > 0 && is_cancel(&error) => {
                left -= 1;
                tracing::info!("a cancel failed a step; issuing it again");
            }
            done => return done,
        }
    }
}

/// A cut point's hold with its cancel absorbed: the invocation goes on
/// with its next step, as after any other absorbed cancel.
fn past_cancel(held: Result<(), TerminalError>) -> Result<(), TerminalError> {
    match held {
        Err(error) if is_cancel(&error) => Ok(()),
        done => done,
    }
}

/// A cut point of an object's handler (see `cut`), cancel absorbed.
pub(crate) async fn cut_point(
    ctx: &ObjectContext<'_>,
    name: &str,
    subject: &str,
) -> Result<(), TerminalError> {
    past_cancel(crate::cut::hold_object(ctx, name, subject).await)
}

/// A cut point of the coordinator, cancel absorbed.
pub(crate) async fn service_cut_point(
    ctx: &Context<'_>,
    name: &str,
    subject: &str,
) -> Result<(), TerminalError> {
    past_cancel(crate::cut::hold_service(ctx, name, subject).await)
}

/// One step of a `ProcessObject` handler after its point of no return:
/// cut point `point` for `subject`, then `call`, issued again when a
/// cancel (or the kill of the callee) fails it, so the handler completes
/// what its first write started.
pub(crate) async fn finish_step<T, F, Fut>(
    ctx: &ObjectContext<'_>,
    point: &str,
    subject: &str,
    call: F,
) -> Result<T, TerminalError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TerminalError>>,
{
    cut_point(ctx, point, subject).await?;
    absorbing(call).await
}
