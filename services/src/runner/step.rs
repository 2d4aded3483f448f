//! Durable steps: a body's side effects run once through `ctx.run` and
//! are replayed from the journal afterwards (retry policy: the
//! [`runner`](super) module docs).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use restate_sdk::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::body::BodyError;
use super::context::RunContext;
use super::outcome::panic_message;

/// Attempts a step gets, the first one included, before it fails for good.
pub const STEP_ATTEMPTS: u32 = 5;
/// Delay before a failed step's first retry; it doubles on each retry.
pub const STEP_FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest delay between two attempts of a step.
pub const STEP_MAX_DELAY: Duration = Duration::from_secs(2);

fn step_retry_policy() -> RunRetryPolicy {
    RunRetryPolicy::new()
        .initial_delay(STEP_FIRST_RETRY)
        .exponentiation_factor(2.0)
        .max_delay(STEP_MAX_DELAY)
        .max_attempts(STEP_ATTEMPTS)
}

impl RunContext<'_> {
    /// Runs `work` once as the journaled step `name` and answers its
    /// result; after a crash or a suspension the journaled result is
    /// answered without running `work` again. Fails with the step's last
    /// error once the [step retry policy](super#step-retry-policy) gives up.
    pub async fn step<'s, T, F>(&'s self, name: &str, work: F) -> Result<T, BodyError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Future<Output = Result<T, BodyError>> + Send + 's,
    {
        // Contexts are covariant: shorten to this call's borrow, so `work`
        // may borrow from the body.
        let ctx: &'s WorkflowContext<'s> = self.ctx;
        let label = name.to_owned();
        let attempt = move || async move {
            match AssertUnwindSafe(work).catch_unwind().await {
                Ok(Ok(value)) => Ok(Json(value)),
                Ok(Err(error)) if error.is_retryable() => Err(HandlerError::from(error)),
                Ok(Err(error)) => Err(TerminalError::new(error.message()).into()),
                Err(panic) => Err(TerminalError::new(format!(
                    "step `{label}` panicked: {}",
                    panic_message(panic.as_ref())
                ))
                .into()),
            }
        };
        let done = ctx
            .run(attempt)
            .name(name)
            .retry_policy(step_retry_policy())
            .await?;
        Ok(done.into_inner())
    }

    /// Sleeps durably: the run suspends (holding nothing) and the engine
    /// resumes it when the time is up, even across endpoint restarts.
    pub async fn sleep(&self, duration: Duration) -> Result<(), BodyError> {
        Ok(self.ctx.sleep(duration).await?)
    }
}
