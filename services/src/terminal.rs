//! `ProcessTerminal`: a workflow per process incarnation whose run awaits
//! the durable promise `outcome`. Hosts attach to the run through ingress
//! (`/restate/workflow/ProcessTerminal/{key}/attach`) and resume when the
//! process ends. Calls nothing.
//!
//! The key is `{process id}#{incarnation}`, fresh on every registration, so
//! an id pruned and registered again never attaches to the old promise.
//! Both handlers are private: only `ProcessObject` starts and resolves it.
//! It starts the run lazily: when a waiter first attaches, or when the
//! process ends (after `finish`, whose promise the run then reads at once).
//! A process nobody awaits thus costs no suspended invocation while it runs,
//! and registration one invocation less.

use restate_process_registry::ProcessAwaitOutput;
use restate_sdk::prelude::*;

use crate::cancel::is_cancel;

const OUTCOME: &str = "outcome";

/// The workflow carrying a process's outcome.
#[derive(Debug)]
pub struct ProcessTerminal;

#[restate_sdk::workflow(name = "ProcessTerminal")]
impl ProcessTerminal {
    /// Started by `ProcessObject` for the first waiter or at the outcome;
    /// returns the outcome once resolved. Private: callers attach to it, they never start one (a run
    /// under a key no process owns would never resolve).
    ///
    /// A cancel is refused by design: the run is the process's, not an
    /// operator's, and a cancelled run would answer every later waiter of
    /// the incarnation with the cancel. It awaits the promise again.
    /// (Killing it does end it; don't: its waiters then get the kill until
    /// the engine's retention forgets the run.)
    #[handler(name = "run", ingress_private)]
    async fn run(
        &self,
        ctx: WorkflowContext<'_>,
    ) -> Result<Json<ProcessAwaitOutput>, TerminalError> {
        loop {
            match ctx.promise::<Json<ProcessAwaitOutput>>(OUTCOME).await {
                Err(error) if is_cancel(&error) => {
                    tracing::info!(run = ctx.key(), "cancel of a terminal wait refused");
                }
                outcome => return outcome,
            }
        }
    }

    /// Resolves the outcome (sent once, when the process turns terminal).
    #[handler(name = "finish", ingress_private)]
    async fn finish(
        &self,
        ctx: SharedWorkflowContext<'_>,
        output: Json<ProcessAwaitOutput>,
    ) -> Result<(), TerminalError> {
        ctx.resolve_promise(OUTCOME, output);
        Ok(())
    }
}
