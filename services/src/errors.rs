//! Model errors as Restate terminal errors: final (nothing retries them)
//! and carrying the code and the structured message the ingress client
//! maps back to a `ProcessError` (see `restate::codes`).

use restate_process_registry::restate::codes::{code_of, encode};
use restate_process_registry::ProcessError;
use restate_sdk::prelude::TerminalError;

/// The terminal error a handler fails with for a model error.
pub(crate) fn terminal(error: ProcessError) -> TerminalError {
    TerminalError::new_with_code(code_of(&error), encode(&error))
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

#[cfg(test)]
mod tests {
    use restate_process_registry::restate::codes::{decode, every_variant, readable};

    use super::*;

    #[test]
    fn a_handler_failure_decodes_as_the_model_error() {
        for error in every_variant("`id` \"quoted\"\nünïcødé") {
            let failure = terminal(error.clone());
            assert_eq!(failure.code(), code_of(&error));
            assert_eq!(readable(failure.message()), error.to_string());
            assert_eq!(decode(failure.code(), failure.message()), Some(error));
        }
    }
}
