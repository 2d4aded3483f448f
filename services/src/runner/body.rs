//! [`ProcessBody`]: the code a `ProcessRunner` runs for a process, and
//! [`BodyError`], how that code fails.

use std::fmt;

use async_trait::async_trait;
use restate_process_registry::restate::codes::readable;
use restate_process_registry::ProcessAwaitOutput;
use restate_sdk::prelude::TerminalError;

use super::context::RunContext;

/// The host's code for engine processes, run durably by `ProcessRunner`.
///
/// `run` starts once per process incarnation and starts again from the top
/// after every crash, restart or suspension of the endpoint: each call it
/// made through its [`RunContext`] before that point (steps, appends,
/// waits, reads) is then answered from the run's journal instead of being
/// done again. So, outside of [`RunContext::step`], a body must be
/// deterministic: the same calls in the same order on every replay. Await
/// each context call before making the next one.
///
/// Dispatch on [`RunContext::kind`] when one endpoint runs several kinds.
/// The returned outcome completes the process. An `Err` (and a panic)
/// completes it `Failed` with the reason; nothing runs the body again.
#[async_trait]
pub trait ProcessBody: Send + Sync + 'static {
    /// Runs one process to its outcome.
    async fn run(&self, ctx: &RunContext<'_>) -> Result<ProcessAwaitOutput, BodyError>;
}

/// Why a body or one of its steps failed.
///
/// Inside a step, a retryable error ([`BodyError::new`]) is retried under
/// the step retry policy and a permanent one ([`BodyError::permanent`])
/// fails the step at once; returned from the body, either ends the process
/// `Failed` with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    message: String,
    retryable: bool,
}

impl BodyError {
    /// A failure worth retrying (inside a step).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// The reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a step failing with it is tried again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BodyError {}

/// A journaled failure (a step out of attempts, a refused registry call)
/// is final; a registry refusal reads as its display text.
impl From<TerminalError> for BodyError {
    fn from(error: TerminalError) -> Self {
        Self::permanent(readable(error.message()))
    }
}
