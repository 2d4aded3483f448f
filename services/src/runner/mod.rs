//! Durable execution of process bodies on Restate.
//!
//! The host implements [`ProcessBody`]; [`bind_services_with_runner`]
//! binds it as the `ProcessRunner` workflow next to the registry services.
//! Registering an engine process that is not `ExternallyOwned` then starts
//! one run per incarnation (see [`ProcessRunner`] for what a run does).
//! The body sees
//! its process through a [`RunContext`]: durable steps and sleeps, and
//! journaled registry calls on its own row. A crash of the endpoint loses
//! nothing journaled: the engine replays the run and the body resumes.
//!
//! ## Step retry policy
//!
//! A step that fails with a retryable [`BodyError`] is tried again, up to
//! [`STEP_ATTEMPTS`] attempts in all: the first retry after
//! [`STEP_FIRST_RETRY`], doubling, at most [`STEP_MAX_DELAY`] apart (about
//! 1.5 s from the first failure to the last attempt). Then the step fails
//! terminally with the last reason, and so does the body unless it handles
//! the error. A permanent error or a panic fails the step at once. A
//! step's retries are retries of the whole run attempt: the engine replays
//! the journal up to the step and runs it again.
//!
//! A step whose result was journaled never runs again. One that was
//! running when the endpoint died runs again from its start: make its
//! effect idempotent where that matters.
//!
//! [`bind_services_with_runner`]: crate::bind_services_with_runner

mod admit;
mod body;
mod calls;
mod context;
mod outcome;
mod step;
mod workflow;

pub(crate) use admit::runs_body;
pub use admit::{RUNNER_LEASE_TTL_MS, RUNNER_OWNER_ID};
pub use body::{BodyError, ProcessBody};
pub use context::RunContext;
pub use outcome::{RunReport, BODY_FAILED, BODY_PANICKED};
pub use step::{STEP_ATTEMPTS, STEP_FIRST_RETRY, STEP_MAX_DELAY};
pub(crate) use workflow::ProcessRunnerClient;
pub use workflow::{ProcessRunner, OUTCOME_REFUSED};
