//! Model errors as Restate terminal errors: final (nothing retries them)
//! and carrying the code the ingress client maps back to a `ProcessError`.

use restate_process_registry::restate::codes::code_of;
use restate_process_registry::ProcessError;
use restate_sdk::prelude::TerminalError;

/// The terminal error a handler fails with for a model error.
pub(crate) fn terminal(error: ProcessError) -> TerminalError {
    TerminalError::new_with_code(code_of(&error), error.to_string())
}

/// Lifts a model result into a handler result.
pub(crate) trait OrTerminal<T> {
    /// Model errors become terminal errors.
    fn or_terminal(self) -> Result<T, TerminalError>;
}

impl<T> OrTerminal<T> for Result<T, ProcessError> {
    fn or_terminal(self) -> Result<T, TerminalError> {
        self.map_err(terminal)
    }
}
